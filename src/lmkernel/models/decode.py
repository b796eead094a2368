"""One forward for a decode step and the prefills that join it: Llama-family causal LMs on CPU.

Llama-family: ``LlamaForCausalLM`` (SmolLM2, Llama 2/3, TinyLlama), ``Qwen2ForCausalLM`` (Qwen2 and
Qwen2.5: the same layer with biases on query/key/value) and ``MistralForCausalLM`` without a sliding
attention window; anything else, or a variant the load-time check catches, keeps transformers' forward.

The continuous-batching engine serves requests that arrive and finish at different steps. Run
through transformers' forward, each newcomer's prompt is a forward of its own between two decode
steps. On CPU a forward costs at least one pass over all weights (540 MB for SmolLM2-135M in
fp32), so a short prompt's prefill cost about as much as a decode step or two while the running
requests waited. Here the running rows' next tokens and the newcomers' prompt tokens go through
the layers together as one ragged batch of token rows: the weights are read once, the GEMMs get
more rows (far cheaper than a pass of their own: bench/experiments/mixed_step.py), and only attention is done
per part, each with its own keys and values:

- running rows: one query token each against the batch's left-padded KV cache. Keys and values
  are kept in buffers with spare columns, so a step writes one column instead of copying the
  cache (transformers' ``DynamicCache`` concatenates); the cache layers hold views of these
  buffers, so the engine's merge and trim, which replace the tensors, keep working. Grouped-query
  attention is one SDPA call, a key/value head's query heads stacked as its query rows.
- each new prompt: causal attention over its own tokens; its keys and values are returned
  left-padded so the engine merges them into the batch cache as it would a prefill's. The keys and
  values of the last prompt are kept: a prompt that starts with the same tokens (a chat template's
  system prompt) reuses them for that prefix and sends only its other tokens through the layers.
  A token's keys and values depend only on the tokens before it, so this is the same computation.

Stacking query/key/value (and gate/up) into one GEMM was tried and was slower here (docs/benchmark-history.md),
so each layer keeps its own weight. At construction the step is checked against transformers'
forward (a prefill of two prompts, then two decode steps that one more prompt joins); any
difference beyond float rounding keeps transformers' forward (``mixed_decoder`` returns None and
logs why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .cachearg import cache_of, with_cache
from .layout import FewRowLinear, few_row_linear

log = logging.getLogger("lmkernel.models")

SPARE = 64  # columns a key/value buffer grows by when full
REUSE_TOKENS = 1024  # leading tokens of the last prompt whose keys and values are kept (~47 MB for SmolLM2)
ARCHITECTURES = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"}  # one decoder layer design
_PLAIN = (nn.Linear, FewRowLinear)
_LINEARS = (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")), ("mlp", ("gate_proj", "up_proj", "down_proj")))


def _layer_linears(layer: nn.Module) -> dict[str, nn.Module]:
    """A decoder layer's linear layers by name (q_proj ... down_proj)."""
    return {name: getattr(getattr(layer, owner), name) for owner, names in _LINEARS for name in names}


@dataclass
class PromptCache:
    """Keys and values of newly prefilled prompts, left-padded to the longest: ``layers[i].keys`` is
    (prompts, kv heads, longest, head dim); ``mask`` (prompts, longest) is 0 on the padding. ``parts[j]``
    is prompt j's own per-layer (keys, values), (kv heads, its tokens, head dim): what a prompt
    prefilled in pieces passes back as ``pasts`` with its next piece."""

    layers: list[Any]
    mask: torch.Tensor
    parts: list[list[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class _KV:
    keys: torch.Tensor
    values: torch.Tensor


def _linear(layer: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A 2-D input's product with a plain fp32 layer, without the module call. The output is made
    row-major: a column-major one would send attention to SDPA's slow math kernel."""
    return lambda h: few_row_linear(h, layer.weight, layer.bias).contiguous()


def _rms(norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """transformers' LlamaRMSNorm for fp32 input, without the module call."""
    return norm.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class MixedDecoder:
    """``step``: one forward for the running rows' next tokens and any new prompts.

    Holds each layer's key/value buffers between steps: state of the one engine thread that calls it.
    """

    def __init__(self, model: Any):
        config = model.config
        self.model = model
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.layers = list(model.model.layers)
        self.linears = [{name: _linear(x) for name, x in _layer_linears(layer).items()} for layer in self.layers]
        self.head = _linear(model.lm_head)
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}
        self._last: tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]] = ([], [])  # a prompt, its k/v

    def step(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None, cache: Any,
             prompts: Sequence[Sequence[int]] = (), pasts: Sequence[Any] | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, PromptCache | None]:
        """Next-token logits of every running row and of every new prompt, in one forward.

        Args:
            ids: (rows,) the last token of each running row (rows may be 0).
            positions: (rows,) its position (real tokens before it).
            mask: (rows, cached + 1) 1 for real tokens, 0 for left padding, the new token included.
            cache: the batch's ``DynamicCache`` (None without rows); every layer gains the new tokens'
                keys and values.
            prompts: token ids of requests joining now (up to where this step prefills them).
            pasts: per prompt, None or the ``PromptCache.parts`` entry of its earlier pieces: the keys
                and values of its first tokens, which this step does not compute again.

        Returns:
            (rows, vocab) logits, (prompts, vocab) logits of each prompt's last token, and the
            prompts' keys and values (None without prompts).
        """
        inner = self.model.model
        rows, group, dim = ids.shape[0], self.heads // self.kv_heads, self.head_dim
        pasts = list(pasts) if pasts is not None else [None] * len(prompts)
        # leading tokens whose keys and values are already known: earlier pieces, or the last prompt's
        reused = [self._reusable(p) if past is None else past[0][0].shape[1] for p, past in zip(prompts, pasts)]
        lengths = [len(p) - c for p, c in zip(prompts, reused)]  # tokens each prompt sends through the layers
        tokens = torch.cat([ids, *(torch.tensor(p[c:], dtype=torch.long) for p, c in zip(prompts, reused))])
        where = torch.cat([positions, *(torch.arange(c, len(p)) for p, c in zip(prompts, reused))])
        h = inner.embed_tokens(tokens)
        cos, sin = inner.rotary_emb(h, where[None])  # (1, tokens, head_dim)
        cos, sin = cos[0], sin[0]
        allowed = mask.bool()[:, None, None, :] if rows else None
        starts = [rows + sum(lengths[:i]) for i in range(len(lengths))]
        new_kv: list[Any] = []
        for i, layer in enumerate(self.layers):
            lin = self.linears[i]
            x = _rms(layer.input_layernorm, h)
            q, k, v = lin["q_proj"](x), lin["k_proj"](x), lin["v_proj"](x)
            q = _rotate(q.reshape(-1, self.heads, dim), cos[:, None], sin[:, None])
            k = _rotate(k.reshape(-1, self.kv_heads, dim), cos[:, None], sin[:, None])
            v = v.reshape(-1, self.kv_heads, dim)
            parts = []
            if rows:
                keys = self._append(i, cache.layers[i], "keys", k[:rows])
                values = self._append(i, cache.layers[i], "values", v[:rows])
                parts.append(F.scaled_dot_product_attention(
                    q[:rows].reshape(rows, self.kv_heads, group, dim), keys, values, attn_mask=allowed,
                    scale=layer.self_attn.scaling).reshape(rows, -1))
            if prompts:
                layer_kv = []
                for start, n, c, past in zip(starts, lengths, reused, pasts):
                    pq, pk, pv = (t[start:start + n].transpose(0, 1) for t in (q, k, v))  # (heads, n, dim)
                    if c:
                        kept_k, kept_v = self._last[1][i] if past is None else past[i]
                        pk, pv = torch.cat([kept_k[:, :c], pk], 1), torch.cat([kept_v[:, :c], pv], 1)
                        causal = torch.arange(c + n)[None] <= torch.arange(c, c + n)[:, None]
                        att = F.scaled_dot_product_attention(pq[None], pk[None], pv[None], attn_mask=causal,
                                                             enable_gqa=True, scale=layer.self_attn.scaling)
                    else:
                        att = F.scaled_dot_product_attention(pq[None], pk[None], pv[None], is_causal=True,
                                                             enable_gqa=True, scale=layer.self_attn.scaling)
                    parts.append(att[0].transpose(0, 1).reshape(n, -1))
                    layer_kv.append((pk, pv))
                new_kv.append(layer_kv)
            h = h + lin["o_proj"](torch.cat(parts) if len(parts) > 1 else parts[0])
            x = _rms(layer.post_attention_layernorm, h)
            h = h + lin["down_proj"](F.silu(lin["gate_proj"](x)) * lin["up_proj"](x))
        last = torch.tensor(list(range(rows)) + [s + n - 1 for s, n in zip(starts, lengths)])
        logits = self.head(_rms(inner.norm, h[last]))
        if not prompts:
            return logits[:rows], logits[rows:], None
        keep = min(len(prompts[-1]), REUSE_TOKENS)  # copies: a view would hold this step's whole k and v
        self._last = (list(prompts[-1][:keep]), [(k[:, :keep].clone(), v[:, :keep].clone())
                                                 for k, v in (layer_kv[-1] for layer_kv in new_kv)])
        return logits[:rows], logits[rows:], _padded(new_kv, [len(p) for p in prompts])

    def forget_buffers(self) -> None:
        """Drop the key/value buffers: the engine replaced the cache's tensors (rows merged or trimmed),
        and a buffer would otherwise keep the old cache's memory alive until the next step."""
        self._buffers.clear()

    def _reusable(self, prompt: Sequence[int]) -> int:
        """Leading tokens of ``prompt`` shared with the last prompt (all but its last token at most:
        that one's logits are needed)."""
        kept = self._last[0]
        limit = min(len(kept), len(prompt) - 1)
        same = 0
        while same < limit and kept[same] == prompt[same]:
            same += 1
        return same

    def _append(self, index: int, layer: Any, attr: str, new: torch.Tensor) -> torch.Tensor:
        """The layer's keys or values with ``new`` (rows, heads, dim) appended as a column, written in
        place into a spare buffer column when the cached tensor is still a view of this buffer."""
        old = getattr(layer, attr)
        rows, heads, length, dim = old.shape
        buf = self._buffers.get((index, attr))
        if (buf is None or buf.data_ptr() != old.data_ptr() or buf.shape[0] != rows or buf.shape[2] <= length
                or buf.stride() != old.stride()):  # the engine merged or trimmed rows: a new tensor
            buf = old.new_empty((rows, heads, length + SPARE, dim))
            buf[:, :, :length] = old
            self._buffers[(index, attr)] = buf
        buf[:, :, length] = new
        view = buf[:, :, :length + 1]
        setattr(layer, attr, view)
        return view


def _padded(new_kv: list[list[tuple[torch.Tensor, torch.Tensor]]], lengths: list[int]) -> PromptCache:
    """Per-prompt keys and values (heads, n, dim), left-padded to the longest prompt per layer."""
    longest = max(lengths)
    layers = []
    for layer_kv in new_kv:
        if len(layer_kv) == 1:  # one prompt: no padding, and no copy (the engine's merge copies anyway)
            layers.append(_KV(layer_kv[0][0][None], layer_kv[0][1][None]))
            continue
        pads = [longest - n for n in lengths]
        keys = torch.stack([F.pad(k, (0, 0, pad, 0)) for (k, _), pad in zip(layer_kv, pads)])
        values = torch.stack([F.pad(v, (0, 0, pad, 0)) for (_, v), pad in zip(layer_kv, pads)])
        layers.append(_KV(keys, values))
    mask = torch.tensor([[0] * (longest - n) + [1] * n for n in lengths])
    return PromptCache(layers, mask, [list(x) for x in zip(*new_kv)])


def mixed_decoder(model: Any) -> MixedDecoder | None:
    """A checked ``MixedDecoder`` for ``model``, or None (logged) when it does not apply or disagrees
    with transformers' forward."""
    why = _unsupported(model)
    if why is None:
        decoder = MixedDecoder(model)
        try:
            error = _disagreement(model, decoder)
        except Exception as e:  # an unexpected layer variant: serve with transformers' forward
            error = f"{type(e).__name__}: {e}"
        if error is None:
            return decoder
        why = f"the one-forward step differs from transformers' forward ({error})"
    log.info("generation runs transformers' forward for prefill and decode: %s", why)
    return None


def _unsupported(model: Any) -> str | None:
    if type(model).__name__ not in ARCHITECTURES:
        return f"{type(model).__name__} is not one of {sorted(ARCHITECTURES)}"
    config = model.config
    if getattr(config, "hidden_act", None) != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "its config is not a plain Llama (activation or tensor-parallel layout)"
    if getattr(config, "sliding_window", None) is not None:
        return f"it uses sliding-window attention ({config.sliding_window} tokens), which this step does not"
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        return "its weights are not fp32 on the CPU"
    linears = [model.lm_head] + [x for layer in model.model.layers for x in _layer_linears(layer).values()]
    odd = next((x for x in linears if type(x) not in _PLAIN), None)
    if odd is not None:  # e.g. dynamic int8: activations scaled per batch, so a ragged batch computes other numbers
        return f"its linear layers are not plain fp32 nn.Linear ({type(odd).__module__}.{type(odd).__name__})"
    if model.training:
        return "the model is in training mode"
    return None


def _disagreement(model: Any, decoder: MixedDecoder) -> str | None:
    """Compare with transformers' forward: prompts of 7 and 4 tokens prefilled, then two decode steps,
    a third prompt (5 tokens, the first 3 the 4-token prompt's: reused keys and values) joining the second."""
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def draw(n: int) -> list[int]:
        return torch.randint(0, vocab, (n,), generator=gen).tolist()

    prompts = [draw(7), draw(4)]
    late, nxt = prompts[1][:3] + draw(2), torch.randint(0, vocab, (2, 2), generator=gen)
    mask = torch.tensor([[1] * 7, [0] * 3 + [1] * 4])
    ids = torch.tensor([prompts[0], [0] * 3 + prompts[1]])

    def close(got: torch.Tensor, want: torch.Tensor, what: str) -> str | None:
        diff = (got - want).abs().max().item()
        return None if diff <= 1e-4 * max(1.0, want.abs().max().item()) else f"{what}: logits differ by {diff:.3g}"

    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                    use_cache=True)
        empty = torch.zeros(0, dtype=torch.long)
        _, first, kv = decoder.step(empty, empty, None, None, prompts)
        if error := close(first, ref.logits[:, -1], "prefill"):
            return error
        cache_ref, cache = cache_of(ref), kv
        for step in range(2):
            positions = mask.sum(1)
            mask = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
            want = model(input_ids=nxt[:, step:step + 1], attention_mask=mask, position_ids=positions[:, None],
                         **with_cache(cache_ref), use_cache=True)
            cache_ref = cache_of(want)
            got, joined, _ = decoder.step(nxt[:, step], positions, mask, cache, [late] if step else [])
            if error := close(got, want.logits[:, -1], f"decode step {step + 1}"):
                return error
        alone = model(input_ids=torch.tensor([late]), use_cache=False).logits[:, -1]
        if error := close(joined, alone, "a prompt joining a decode step"):
            return error
    decoder.forget_buffers()
    decoder._last = ([], [])
    return None
