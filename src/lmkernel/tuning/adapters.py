"""Bottleneck adapters (Houlsby / Pfeiffer), written here.

A small down-project -> activation -> up-project block added to the output of a layer's attention
projection and feed-forward output (Houlsby), or of the feed-forward output only (Pfeiffer), with a
residual connection, so a new adapter starts as the identity (its up-projection is zero). The backbone
stays frozen; the adapters, the layer norms and the task head train. Written here because the
``adapters`` library pins transformers 4.x. Artifacts hold only the trained tensors and load with
``lmkernel.load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..errors import LmkError
from .base import Context, Hooks, modules_to_save, refuse_merge
from .base import Options as _Base

NAME = "adapter"
DEFAULT_LR = 1e-3
MERGEABLE = False
SUMMARY = "bottleneck adapters after attention and MLP outputs (Houlsby) or the MLP only (Pfeiffer); no merge"
WEIGHTS_FILE = "adapter_weights.safetensors"

# Which linear's output each placement adapts, by module-name suffix, per architecture family.
ATTENTION_OUT = ("attention.output.dense", "self_attn.o_proj", "attention.out_lin", "attn.c_proj")
FFN_OUT = ("mlp.down_proj", "ffn.lin2", "mlp.c_proj")


class Options(_Base):
    placement: Literal["houlsby", "pfeiffer"] = Field(
        "houlsby", description="houlsby: after the attention output and the feed-forward output of every layer; "
        "pfeiffer: after the feed-forward output only (half the adapters, usually as accurate).")
    reduction_factor: int = Field(16, gt=0, description="Bottleneck width = hidden size / this.")
    activation: Literal["relu", "gelu", "silu"] = Field("relu", description="Non-linearity inside the bottleneck.")
    train_norms: bool = Field(True, description="Also train the layer norms (as Houlsby et al.); false: "
                              "adapters and head only.")


def _is_ffn_out(name: str) -> bool:
    if name.endswith(FFN_OUT):
        return True
    return name.endswith(".output.dense") and not name.endswith("attention.output.dense")  # BERT family


def _places(model: Any, placement: str) -> list[str]:
    from torch import nn

    chosen = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if _is_ffn_out(name) or (placement == "houlsby" and name.endswith(ATTENTION_OUT)):
            chosen.append(name)
    return chosen


def _adapter_class() -> type:
    import torch
    from torch import nn

    class BottleneckAdapter(nn.Module):
        """``h + up(act(down(h)))`` on the wrapped linear's output ``h``."""

        def __init__(self, base: nn.Linear, bottleneck: int, activation: str):
            super().__init__()
            self.base = base
            width = base.out_features
            self.down = nn.Linear(width, bottleneck, dtype=base.weight.dtype, device=base.weight.device)
            self.up = nn.Linear(bottleneck, width, dtype=base.weight.dtype, device=base.weight.device)
            nn.init.normal_(self.down.weight, std=1e-2)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
            self.act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "silu": nn.SiLU()}[activation]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.base(x)
            return h + self.up(self.act(self.down(h)))

    return BottleneckAdapter


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    names = _places(model, opts.placement)
    if not names:
        model_type = getattr(model.config, "model_type", type(model).__name__)
        raise LmkError(f"bottleneck adapters do not know where to go in a {model_type} model", where="tuning.method",
                       fix="use lora, ia3 or prefix for this architecture (adapters know BERT, DistilBERT, "
                       "Llama/Qwen2/Mistral and GPT-2 layer names)")
    for p in model.parameters():
        p.requires_grad_(False)
    cls = _adapter_class()
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        setattr(parent, child, cls(base, max(1, base.out_features // opts.reduction_factor), opts.activation))
    model.lmk_adapter_options = opts.model_dump()
    for _, p in _own(model):
        p.requires_grad_(True)
    return model


def _own(model: Any) -> list[tuple[str, Any]]:
    """The parameters the method trains and the artifact holds: the adapters, the task head, BERT's
    pooler and (``train_norms``) the layer norms."""
    heads = tuple(h + "." for h in modules_to_save(model) or ())
    norms = model.lmk_adapter_options["train_norms"]
    return [(name, p) for name, p in model.named_parameters()
            if ((".down." in name or ".up." in name) and ".base." not in name) or name.startswith(heads)
            or ".pooler." in "." + name or (norms and "norm" in name.lower() and p.ndim == 1)]


def save(model: Any, directory: Path, merge: bool) -> str:
    from safetensors.torch import save_file

    from ..fsutil import atomic_write_json

    refuse_merge(merge, "bottleneck adapters add a non-linear block")
    state = {n: p.detach().cpu().contiguous() for n, p in _own(model)}
    save_file(state, str(directory / WEIGHTS_FILE))
    atomic_write_json(directory / "adapter_config.json", {"method": NAME, "options": model.lmk_adapter_options})
    model.config.save_pretrained(str(directory))
    return "adapter"


def load(base: Any, directory: Path, card: dict[str, Any]) -> Any:
    import json

    from safetensors.torch import load_file

    try:
        options = Options(**json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))["options"])
        state = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: bad JSON or options out of range
        raise LmkError(f"cannot read the adapters in {directory}: {e}", where=str(directory),
                       fix="the artifact is damaged; re-run training") from e
    model = apply(base, options, Context(task=card.get("task", "classification")))
    missing = set(state) - {n for n, _ in model.named_parameters()}
    if missing:
        raise LmkError(f"the adapters in {directory} do not fit the base model {card.get('base_model')!r}: "
                       f"{len(missing)} tensor(s) without a place, e.g. {sorted(missing)[0]}", where=str(directory),
                       fix="load it with the base model it was trained on")
    model.load_state_dict(state, strict=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


HOOKS = Hooks(save=save, load=load)
