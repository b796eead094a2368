"""One LoRA training step: peft's forward, the forward of ``training/lora.py`` (one autograd node per
adapted linear), and the forms it had before: the adapter added into the base output with an
in-place ``addmm_`` (session 8), or with a copying ``addmm``.

A random-init Llama with SmolLM2-135M's config (30 layers, hidden 576, MLP 1536, 49,152-token
vocabulary; values do not change GEMM or elementwise speed, and nothing is loaded), LoRA r 8 on
every attention and MLP linear as ``bench/translation.py`` trains it, a batch of 8 sequences of
``--tokens`` tokens with the loss on the last half (the German side). A step is forward,
backward and a fused AdamW step. One model and optimizer serve all variants (the LoRA layers'
``forward`` is switched between rounds: a deep copy per variant sits elsewhere in memory and
measured differently); the order rotates round by round; the median of each is printed with the
ratio to peft's, and the first-step losses are compared.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/lora_step.py [--rounds 5] [--tokens 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(tokens: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmkernel.tuning import apply_tuning

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    model = apply_tuning(LlamaForCausalLM(cfg), "lora", r=8, alpha=16)
    for name, p in model.named_parameters():  # peft starts B at zero; any values do for timing
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    ids = torch.randint(0, 49152, (8, tokens))
    labels = ids.clone()
    labels[:, : tokens // 2] = -100
    return model, ids, labels


def step_fn(model, ids, labels):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    model.train()

    def step() -> float:
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def addmm_forward(in_place: bool):
    """``AddmmLinear.forward`` as it was: the base layer, then the adapter through autograd, added into
    the base output in place (``addmm_``) or by ``torch.addmm``, which first copies it."""
    from lmkernel.training.lora import _plain

    def forward(self, x, *args, **kwargs):
        name = None if args or kwargs else _plain(self)
        if name is None or x.dtype != self.lora_A[name].weight.dtype:
            return type(self).__mro__[1].forward(self, x, *args, **kwargs)
        result = self.base_layer(x)
        low = self.lora_A[name](self.lora_dropout[name](x)) * self.scaling[name]
        low, b = low.reshape(-1, low.shape[-1]), self.lora_B[name].weight.t()
        if in_place:
            result.view(-1, result.shape[-1]).addmm_(low, b)
            return result
        return torch.addmm(result.reshape(-1, result.shape[-1]), low, b).view(result.shape)

    return forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round and variant")
    ap.add_argument("--tokens", type=int, default=60, help="tokens per sequence (Multi30k prompts: ~60)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rounds import alternate

    from lmkernel.training.lora import _fused_class, use_addmm_lora

    model, ids, labels = build(args.tokens)
    print(f"addmm LoRA layers: {use_addmm_lora(model)}", flush=True)
    cls = _fused_class()
    forwards = {"peft": cls.__mro__[1].forward, "addmm, copying": addmm_forward(False),
                "addmm, in place": addmm_forward(True), "one node": cls.forward}
    step = step_fn(model, ids, labels)
    first = {}
    for name, fwd in forwards.items():  # same weights: the same loss
        cls.forward = fwd
        with torch.no_grad():
            first[name] = float(model(input_ids=ids, labels=labels).loss)
    print("first-step loss: " + ", ".join(f"{n} {v:.6f}" for n, v in first.items()), flush=True)
    step()  # warm-up
    try:
        med = alternate({name: lambda _: step() for name in forwards}, range(args.steps), args.rounds,
                        before=lambda name: setattr(cls, "forward", forwards[name]))
    finally:
        cls.forward = forwards["one node"]
    print(f"\nbatch 8 x {args.tokens} tokens, LoRA r 8 on 210 linears, {args.threads} threads, median of "
          f"{args.rounds} rounds, ms/step: " + ", ".join(f"{n} {med[n] * 1000:.0f} ({med['peft'] / med[n]:.2f}x)"
                                                        for n in forwards))


if __name__ == "__main__":
    main()
