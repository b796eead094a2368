"""A local webhook receiver for the monitor's alerts: prints each JSON POST on one line.

    python examples/finance/webhook.py              # listens on http://127.0.0.1:9009/ (any path)
    python examples/finance/webhook.py --port 0     # a free port, printed on the first line

Only the standard library, so it runs anywhere the example does. Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # an alert is a few hundred bytes; refuse anything absurd


class AlertHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": "body too large"})
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        print(json.dumps({"path": self.path, "alert": body}, ensure_ascii=False), flush=True)
        self._answer(200, {"ok": True})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's signature)
        """Quiet: the alerts themselves are the output."""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9009)
    args = ap.parse_args(argv)
    # Ctrl-C and SIGTERM stop it even when started in the background, where a shell ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = ThreadingHTTPServer((args.host, args.port), AlertHandler)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
