"""The console's two promises, measured: cold start and the playground's first streamed token.

    .venv/bin/python bench/console.py [--rounds 10] [--starts 3] [--hidden 256] [--layers 4] [--threads 1]

1. Cold start: ``lmkernel console DIR --port N`` from process start to the first 200 on ``/`` (target < 2 s),
   the median of --starts starts, in wall time and in the process's CPU time by then (the wall time of an
   idle machine, which a shared one inflates); ``python -m http.server`` is timed the same way beside it, as
   the floor of "a Python process that serves a page" on this machine at this moment.
2. Time to first token: one causal LM (a random Llama, --hidden/--layers, a word-level vocabulary, ChatML
   template, saved as a chat run) served by ``lmkernel serve`` (streamed POST /v1/chat/completions, time to the first
   chunk carrying text) and by the console's playground (POST /api/chat, time to the first text event), the
   same greedy prompt alternating between the two for --rounds rounds after one warm-up each (target: the
   console within 1.5x the server). Both processes run at once on this machine, as a user would have them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
PROMPT = [{"role": "user", "content": "Tell me about the cat on the mat."}]
MAX_NEW = 16


def build_chat_run(run: Path, hidden: int, layers: int) -> None:
    """A random Llama with a word-level tokenizer (every generated token is a whole word, so each one streams
    as a piece at once on both sides) and a ChatML template, saved as an lmkernel chat run."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    words = sorted(set("the a cat dog sat runs on in mat park tell me about weather today user assistant system "
                       "is was good bad big small red blue one two three".split()) | set(".,!?\n"))
    vocab = {w: i for i, w in enumerate(specials + words)}
    wl = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    wl.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    model_dir = run / "model"
    tok.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 3,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # never the end or an unknown token: every reply is MAX_NEW words on both sides
        model.lm_head.weight[:len(specials)] = 0
        model.lm_head.weight[:len(specials), 0] = -100.0
    model.save_pretrained(model_dir)
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "task_options": {}, "base_model": "random"}
    (model_dir / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    (run / "spec.yaml").write_text("task: {type: chat}\nmodel: {name: random}\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what a start costs, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_200(command: list[str], url: str, cwd: Path, timeout: float = 120.0,
              cpu: list[float] | None = None) -> tuple[float, subprocess.Popen]:
    """Seconds from starting ``command`` to the first 200 on ``url`` (its CPU seconds then go to ``cpu``);
    the process is left running."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    took = time.perf_counter() - start
                    if cpu is not None:
                        cpu.append(cpu_seconds(proc.pid))
                    return took, proc
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise SystemExit(f"{' '.join(command)} did not answer {url} within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def cold_starts(home: Path, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"console": [], "http.server": [], "console_cpu": []}
    for _ in range(n):
        port = free_port()
        took, proc = first_200([sys.executable, "-m", "lmkernel.cli", "console", "runs", "--port", str(port)],
                               f"http://127.0.0.1:{port}/", home, cpu=out["console_cpu"])
        stop(proc)
        out["console"].append(took)
        port = free_port()
        took, proc = first_200([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                               f"http://127.0.0.1:{port}/", home)
        stop(proc)
        out["http.server"].append(took)
    return out


def ttft(port: int, path: str, body: dict, has_text) -> float:
    """Seconds from sending the request to the first SSE event ``has_text`` accepts (the stream is read out)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    first = None
    for raw in response:
        line = raw.decode().strip()
        if first is None and line.startswith("data: ") and line != "data: [DONE]" and has_text(json.loads(line[6:])):
            first = time.perf_counter() - start
    conn.close()
    assert first is not None, f"no text streamed from {path}"
    return first


def serve_text(event: dict) -> bool:
    return any(c.get("delta", {}).get("content") for c in event.get("choices", []))


def console_text(event: dict) -> bool:
    return bool(event.get("text"))


def first_tokens(home: Path, rounds: int, threads: int) -> dict[str, list[float]]:
    sport, cport, t = free_port(), free_port(), ["--threads", str(threads)]
    _, server = first_200([sys.executable, "-m", "lmkernel.cli", "serve", "runs/chat", "--port", str(sport), *t],
                          f"http://127.0.0.1:{sport}/readyz", home, timeout=300)
    _, console = first_200([sys.executable, "-m", "lmkernel.cli", "console", "runs", "--port", str(cport), *t],
                           f"http://127.0.0.1:{cport}/", home)
    serve_body = {"messages": PROMPT, "max_tokens": MAX_NEW, "temperature": 0, "stream": True}
    console_body = {"run": "chat", "messages": PROMPT, "max_new_tokens": MAX_NEW, "temperature": 0}
    out: dict[str, list[float]] = {"serve": [], "console": []}
    try:
        for i in range(rounds + 1):  # round 0 warms both up (the console loads the model on first use)
            s = ttft(sport, "/v1/chat/completions", serve_body, serve_text)
            c = ttft(cport, "/api/chat", console_body, console_text)
            if i:
                out["serve"].append(s)
                out["console"].append(c)
    finally:
        stop(server)
        stop(console)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server and of the console's "
                    "playground (the same for both; 1 on a shared 2-core box)")
    args = ap.parse_args()
    import torch

    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, cores: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    home = Path(tempfile.mkdtemp(prefix="bench-console-"))
    try:
        build_chat_run(home / "runs" / "chat", args.hidden, args.layers)
        starts = cold_starts(home, args.starts)
        med = {k: statistics.median(v) for k, v in starts.items()}
        print(f"cold start, median of {args.starts}: console {med['console']:.2f} s wall (target < 2 s), "
              f"{med['console_cpu']:.2f} s CPU; python -m http.server {med['http.server']:.2f} s wall")
        firsts = first_tokens(home, args.rounds, args.threads)
        s, c = statistics.median(firsts["serve"]), statistics.median(firsts["console"])
        print(f"first token, median of {args.rounds}: lmkernel serve {s * 1000:.0f} ms, console playground "
              f"{c * 1000:.0f} ms, ratio console/serve {c / s:.2f} (target <= 1.5)")
        print(json.dumps({"cold_start_s": starts, "ttft_s": firsts}, indent=None))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
