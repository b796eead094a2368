"""Prompt- and prefix-tuned causal LMs as the generation engine drives a plain one.

The serving engine runs its own prefills and decode steps on a left-padded batch cache. A virtual
prefix fits that shape: its tokens sit at the front of each row's cache with mask 1, so positions
(counted from the mask) and attention come out as in peft's own forward. Prefill starts from the
prefix's keys and values (prompt tuning: the learned embeddings run through the model once; prefix
tuning: the learned keys and values); decode steps go straight to the base model with the cache as it is.

``generate`` does the same through transformers' ``generate``: the prefix as a starting cache, the
mask grown by it. (peft's own ``generate`` for these methods does not reproduce the greedy tokens of
the model's forward under transformers 5; ``tests/serve/test_virtual_prefix.py`` checks ours does.)
"""

from __future__ import annotations

from typing import Any

from ..models.cachearg import cache_name, cache_of, with_cache


def virtual_prefix_lm(peft_model: Any) -> Any:
    import torch
    from torch import nn

    class VirtualPrefixLM(nn.Module):
        """``virtual_tokens``: how many columns of mask 1 the engine puts before each prompt."""

        def __init__(self, model: Any):
            super().__init__()
            config = model.active_peft_config
            self.peft = model
            self.lm = model.get_base_model()
            self.config, self.generation_config = self.lm.config, self.lm.generation_config
            self.virtual_tokens = int(config.num_virtual_tokens)
            self.prompt_tuning = config.peft_type == "PROMPT_TUNING"
            with torch.no_grad():
                embeds = model.get_prompt(batch_size=1)[0] if self.prompt_tuning else torch.zeros(0)
            self.register_buffer("prompt_embeds", embeds.detach().clone(), persistent=False)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    position_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
            cache = kwargs.pop(cache_name(), None)
            if cache is not None:  # a decode step: the prefix is in the cache already
                return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               **with_cache(cache), **kwargs)
            rows, n = input_ids.shape
            p = self.virtual_tokens
            if attention_mask is None:
                attention_mask = torch.ones(rows, n, dtype=torch.long, device=input_ids.device)
            if attention_mask.shape[1] == n:  # the caller's mask covers the prompt only
                ones = torch.ones(rows, p, dtype=attention_mask.dtype, device=attention_mask.device)
                attention_mask = torch.cat([ones, attention_mask], 1)
            positions = (attention_mask.cumsum(1) - 1).clamp(min=0)[:, p:]
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                           **with_cache(self.prefix_cache(rows)), **kwargs)

        @torch.no_grad()
        def prefix_cache(self, rows: int) -> Any:
            """The virtual tokens' keys and values for ``rows`` rows, at positions 0..P-1."""
            if self.prompt_tuning:
                prompt = self.prompt_embeds.to(next(self.lm.parameters()).dtype).expand(rows, -1, -1)
                return cache_of(self.lm(inputs_embeds=prompt, use_cache=True))
            return _cast_cache(self.peft.get_prompt(rows), next(self.lm.parameters()).dtype)

        @torch.no_grad()
        def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
            """transformers' ``generate`` on the base model, started from the prefix cache."""
            rows = input_ids.shape[0]
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            ones = torch.ones(rows, self.virtual_tokens, dtype=attention_mask.dtype, device=attention_mask.device)
            return self.lm.generate(input_ids=input_ids, attention_mask=torch.cat([ones, attention_mask], 1),
                                    **with_cache(self.prefix_cache(rows)), **kwargs)

    model = VirtualPrefixLM(peft_model)
    model.eval()
    return model


def _cast_cache(cache: Any, dtype: Any) -> Any:
    """Prefix keys/values in the model's dtype (a bf16-served model gets fp32 prefixes from peft)."""
    for layer in getattr(cache, "layers", []):
        if getattr(layer, "keys", None) is not None and layer.keys.dtype != dtype:
            layer.keys, layer.values = layer.keys.to(dtype), layer.values.to(dtype)
    return cache
