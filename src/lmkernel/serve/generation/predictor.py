"""The generation predictor: prompts to token ids (413 / truncation), and the engine that runs them.

Encoding happens on the request path so a too-long prompt is answered 413 before it takes a
slot. The tokenizer is only ever called with fixed settings (no truncation state, which a fast
tokenizer mutates per call), so the engine thread decoding while a request thread encodes is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ..http_errors import ApiError
from ..predictor import model_name
from .engine import Engine
from .schemas import ChatMessage


class GenerationPredictor:
    """A causal-LM artifact behind the generation endpoints.

    Args:
        model: a loaded causal-LM artifact (``lmkernel.load``): ``.model``, ``.tokenizer``, ``.card``, ``.path``.
        max_input_tokens: prompt tokens at most; None: the model's context minus one.
        precision: "fp32", or "bf16" to cast the weights (fast only where the CPU has bf16 units).
        threads: torch intra-op threads for the engine thread; None keeps torch's default.
        prepack: fp32 Llama-family models run each decode step and the prefills that join it as one
            forward (``models/decode.py``); False, or a model it does not apply to: transformers' forward.
    """

    task: str = "chat"  # the artifact's: chat, translation or summarization
    kind: ClassVar[str] = "generate"

    def __init__(self, model: Any, *, max_input_tokens: int | None = None, precision: str = "fp32",
                 threads: int | None = None, prepack: bool = True):
        import torch

        from ...tuning import serving_model
        from ..predictor import resolve_precision

        # prompt/prefix tuning: the virtual tokens become a prefix of each row's cache (tuning/virtual.py)
        self.model = serving_model(model.model)
        self.tokenizer = model.tokenizer
        self.card = model.card
        self.task = self.card.get("task", "chat")
        self.name = model_name(model.path)
        self.style = _prompt_style(model)
        self.context = int(getattr(self.model.config, "max_position_embeddings", None) or 2048)
        self.max_input_tokens = min(max_input_tokens or self.context - 1, self.context - 1)
        self.precision = resolve_precision(precision, self.card.get("weights", "full"))
        if self.precision == "bf16":
            self.model = self.model.to(torch.bfloat16)
        self.threads = threads
        self.decoder = None
        if prepack:  # it checks the weights itself (bf16 ones keep transformers' forward, logged)
            from ...models.decode import mixed_decoder

            self.decoder = mixed_decoder(self.model)
        eos = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = sorted(e for e in eos if e is not None)

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "base_model": self.card.get("base_model"),
                "max_input_tokens": self.max_input_tokens}

    # ---------------------------------------------------------------- request side

    def encode_prompt(self, prompt: str, truncate: bool, param: str = "prompt", raw: bool = False) -> list[int]:
        """The prompt as the CLI and ``Model.generate`` feed it (``generation.prompt_ids``): the task's chat
        template and trained system prompt, or as-is with ``raw`` (and for a plain LM).

        Raises:
            ApiError: 422 when the prompt has no tokens; 413 when it is too long.
        """
        return self._fit(self._ids(param, prompt, raw=raw), truncate, param)

    def encode_chat(self, messages: Sequence[ChatMessage], truncate: bool) -> list[int]:
        """The chat formatted by the model's template (the trained system prompt first unless the chat
        has one), ending with the assistant's turn opening.

        Raises:
            ApiError: 422 when the model has no chat template or it refuses the messages; 413 when too long.
        """
        chat = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in messages]
        return self._fit(self._ids("messages", messages=chat), truncate, "messages")

    def _ids(self, param: str, prompt: str | None = None, **kwargs: Any) -> list[int]:
        from ...errors import LmkError
        from ...generation import prompt_ids

        try:
            return prompt_ids(self.tokenizer, prompt, style=self.style, **kwargs)
        except LmkError as e:
            raise ApiError(422, f"{param}: {e.what}" + (f"; {e.fix}" if e.fix else ""), param=param) from e

    def _fit(self, ids: list[int], truncate: bool, param: str) -> list[int]:
        if not ids:
            raise ApiError(422, f"{param}: the prompt has no tokens", param=param)
        if len(ids) <= self.max_input_tokens:
            return ids
        if truncate:
            return ids[-self.max_input_tokens:]  # keep the end: generation continues from there
        raise ApiError(413, f"{param} has {len(ids)} tokens, more than the limit of {self.max_input_tokens}; "
                       "shorten it or send \"truncate\": true to keep its end", param=param)

    def room(self, prompt_tokens: int) -> int:
        """New tokens that still fit in the model's context after the prompt."""
        return max(1, self.context - prompt_tokens)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ---------------------------------------------------------------- engine side

    def setup_thread(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def warm_up(self) -> None:
        """A prefill and two batched decode steps, so first-call allocations happen before readiness."""
        from .sampling import SamplingParams

        engine = self.make_engine(max_batch=2, max_queue=2)
        ids = self.encode_prompt("warm up", truncate=True)
        for _ in range(2):
            engine.submit(ids, SamplingParams(max_new_tokens=3, temperature=0.0, ignore_eos=True), lambda _: None)
        while engine.running or engine.depth:
            engine.iterate()

    def make_engine(self, *, max_batch: int, max_queue: int, on_step: Any = None) -> Engine:
        return Engine(self.model, decode=self.decode, eos_ids=self.eos_ids, max_batch=max_batch,
                      max_queue=max_queue, on_start=self.setup_thread, on_step=on_step, decoder=self.decoder)


def _prompt_style(model: Any) -> Any:
    """The artifact's ``PromptStyle`` (``Model.prompt_style``), so the server builds the prompts the CLI does."""
    from ...generation import PromptStyle

    style = getattr(model, "prompt_style", None)
    if isinstance(style, PromptStyle):
        return style
    return PromptStyle(system=(getattr(model, "card", None) or {}).get("task_options", {}).get("system_prompt"))
