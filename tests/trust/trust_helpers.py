"""Shared by the trust tests: example texts and a local webhook receiver.

A module of its own (not conftest.py): test modules import it by name, and another folder's conftest
module would shadow a ``from conftest import`` when the whole suite runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

EN = ["good film", "bad acting and a dull plot", "great story", "terrible ending", "fine but long",
      "the cast was excellent", "boring", "a lovely quiet film about a family"]


@contextmanager
def receiver(fail_first: int = 0) -> Iterator[tuple[str, list]]:
    """A local HTTP server that answers 500 to the first ``fail_first`` POSTs, then 200; yields its URL
    and the list of JSON bodies it received."""
    calls: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(calls) <= fail_first else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", calls
    finally:
        server.shutdown()


def profile_json(reference: dict) -> str:
    """A trust.json with the given drift reference and neutral thresholds (what training writes)."""
    import json

    return json.dumps({"version": 1, "low_confidence": {"threshold": 0.5, "how": "test"},
                       "ood": {"method": "msp", "threshold": 0.9, "how": "test"}, "reference": reference})
