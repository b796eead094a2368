"""Compression methods: one file per method, registered by name in a plain dict.

A method turns a trained artifact into a new one (``build``) and knows how to load the weight
kind it writes (``load``). The CLI's ``--method`` choices, its ``--help`` and
``artifact.load_model_weights`` all read this registry, so adding a method is one file plus one
``register`` line. Entries hold import paths, not functions, so ``lmkernel --help`` never imports
torch or onnxruntime.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import LmkError


class Options(BaseModel):
    """A method's own ``lmkernel compress`` flags: one field each, its description the flag's help (None: not
    given). Types are checked here; the method's ``check`` says what a value means for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Method:
    """What the registry knows about a compression method.

    Attributes:
        name: the ``--method`` value.
        summary: one line for ``--help`` and the docs.
        build: ``"module:function"``; ``build(source: Model, tmp_dir: Path, **options) -> dict``
            writes the new model folder and returns the card fields it changes.
        load: ``"module:function"``; ``load(model_dir, card, task)`` returns a callable model.
        weights: the card's ``weights`` value this method writes (what ``load`` reads back).
        tasks: tasks whose artifacts the method handles.
        quantize: values ``--quantize`` accepts; empty means the option is rejected.
        options: the ``Options`` model of the other flags ``build`` takes as keywords (``--sparsity`` ->
            ``sparsity``); the CLI makes its flags from these models.
        check: optional ``"module:function"``; ``check(options)`` validates their values before
            anything slow happens, raising LmkError.
        fits: optional ``"module:function"``; ``fits(source, options, spec)`` checks the loaded
            artifact (and training spec) against the options before the output folder is made.
        uses_spec: ``build`` also gets ``spec=`` (the loaded training spec: ``--data SPEC.yaml``,
            else the run's own spec.yaml, else None) for methods that train or need training data.
    """

    name: str
    summary: str
    build: str
    load: str
    weights: str
    tasks: tuple[str, ...]
    quantize: tuple[str, ...] = ()
    options: type[Options] | None = None
    check: str | None = None
    fits: str | None = None
    uses_spec: bool = False

    def accepts(self) -> tuple[str, ...]:
        """Every option name this method takes."""
        return (("quantize",) if self.quantize else ()) + tuple(self.options.model_fields if self.options else ())


_METHODS: dict[str, Method] = {}


def register(method: Method) -> None:
    """Add a method; names and weight kinds are unique, names lower-case."""
    if method.name in _METHODS:
        raise ValueError(f"compression method {method.name!r} is already registered")
    if method.name != method.name.lower() or not method.name.replace("_", "").isalnum():
        raise ValueError(f"method name {method.name!r} must be lower-case letters, digits and underscores")
    if any(m.weights == method.weights for m in _METHODS.values()):
        raise ValueError(f"weight kind {method.weights!r} already belongs to another method")
    _METHODS[method.name] = method


def method_names() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    """The registered method, or an LmkError naming the closest one."""
    if name in _METHODS:
        return _METHODS[name]
    close = difflib.get_close_matches(name, list(_METHODS), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise LmkError(f"unknown compression method {name!r}.{hint}", where="--method",
                   fix=f"use one of: {', '.join(method_names())}")


def option_flags() -> list[tuple[str, Any, str]]:
    """``(name, type, help)`` of every method's own flags, for the CLI: a flag several methods take gets one
    help naming each method's meaning (``prune: ...; distill: ...``)."""
    merged: dict[str, tuple[Any, list[str]]] = {}
    for m in _METHODS.values():
        for name, f in (m.options.model_fields.items() if m.options else ()):
            annotation, helps = merged.setdefault(name, (f.annotation, []))
            if annotation != f.annotation:
                raise TypeError(f"compression option {name!r} has two types: {annotation} and {f.annotation}")
            helps.append(f"{m.name}: {f.description}")
    return [(name, annotation, "; ".join(helps) + ".") for name, (annotation, helps) in merged.items()]


def weight_kinds() -> list[str]:
    return sorted(m.weights for m in _METHODS.values())


def _resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def build_function(method: Method) -> Any:
    return _resolve(method.build)


def check_options(method: Method, options: dict[str, Any]) -> None:
    """Reject options the method does not take or values it cannot use, before anything slow."""
    for name, value in options.items():
        if name not in method.accepts():
            takers = [m.name for m in _METHODS.values() if name in m.accepts()]
            raise LmkError(f"--{name} does not apply to --method {method.name}", where=f"--{name}",
                           fix=f"drop --{name}" + (f"; it is for --method {', '.join(takers)}" if takers else ""))
        if name == "quantize" and value not in method.quantize:
            raise LmkError(f"--quantize {value!r} is not supported by --method {method.name}", where="--quantize",
                           fix=f"use one of: {', '.join(method.quantize)}")
    own = {k: v for k, v in options.items() if k != "quantize"}
    if method.options is not None and own:
        from pydantic import ValidationError

        try:
            method.options(**own)
        except ValidationError as e:
            err = e.errors()[0]
            flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "--method"
            raise LmkError(f"{flag} {own.get(str(err['loc'][0]) if err['loc'] else '', '')!r}: {err['msg']}",
                           where=flag, fix=f"see `lmkernel compress --help` for {flag}") from None
    if method.check:
        _resolve(method.check)(options)


def check_fits(method: Method, source: Any, options: dict[str, Any], spec: Any) -> None:
    """Run the method's ``fits`` check, if any (raises LmkError)."""
    if method.fits:
        _resolve(method.fits)(source, options, spec)


def load_weights(model_dir: Path, card: dict[str, Any], task: Any) -> Any:
    """Load a compressed artifact's model; ``artifact.load_model_weights`` delegates here."""
    for method in _METHODS.values():
        if method.weights == card["weights"]:
            return _resolve(method.load)(model_dir, card, task)
    raise LmkError(f"unknown weight kind {card['weights']!r} in {model_dir}", where=str(model_dir / "lmkernel.json"),
                   fix="the artifact comes from a newer lmkernel or is damaged; upgrade lmkernel or re-create it")


register(Method(
    name="int8", weights="int8", tasks=("classification", "ner", "chat"),
    summary="dynamic int8 quantization of every nn.Linear (torch.ao), embeddings stored int8 weight-only; "
    "encoders and causal LMs",
    build="lmkernel.compress.int8:build", load="lmkernel.compress.int8:load_model"))
register(Method(
    name="onnx", weights="onnx", tasks=("classification",), quantize=("int8",),
    summary="ONNX export (torch.onnx dynamo exporter), run by onnxruntime; --quantize int8 adds "
    "onnxruntime dynamic int8 quantization",
    build="lmkernel.compress.onnx:build", load="lmkernel.compress.onnx:load_model"))
class PruneOptions(Options):
    sparsity: float | None = Field(None, description="fraction of the linear weights (with --structured: of heads / "
                                   "FFN neurons per layer) to remove, e.g. 0.4")
    structured: str | None = Field(None, description="heads,ffn (or heads, ffn) removes whole structures; none "
                                   "(default) is global unstructured magnitude pruning")
    finetune: int | None = Field(None, description="epochs of recovery fine-tuning on the run's training data "
                                 "(default 0)")


register(Method(
    name="prune", weights="pruned", tasks=("classification",), options=PruneOptions,
    summary="pruning to --sparsity: global unstructured magnitude pruning of the encoder's linear weights "
    "(default; zeros only, dense kernels run no faster), or with --structured heads,ffn removal of the least "
    "important attention heads and FFN neurons of every layer (matrices really shrink); --finetune N recovers "
    "accuracy with N epochs on the run's data",
    build="lmkernel.compress.prune:build", load="lmkernel.compress.prune:load_model",
    check="lmkernel.compress.prune:check_options", fits="lmkernel.compress.prune:fits", uses_spec=True))
class DistillOptions(Options):
    layers: int | None = Field(None, description="transformer layers of the student, fewer than the teacher's, e.g. 3")
    finetune: int | None = Field(None, description="training epochs (default: the spec's)")


register(Method(
    name="distill", weights="distilled", tasks=("classification", "ner"), options=DistillOptions,
    summary="knowledge distillation into a student with --layers of the teacher's layers (evenly spread), "
    "trained on --data SPEC.yaml (default: the run's spec) with temperature-scaled KL on the teacher's logits "
    "plus the label loss; --finetune N epochs (default: the spec's)",
    build="lmkernel.compress.distill:build", load="lmkernel.compress.distill:load_model",
    check="lmkernel.compress.distill:check_options", fits="lmkernel.compress.distill:fits", uses_spec=True))
register(Method(
    name="weightonly", weights="weightonly", tasks=("chat",), quantize=("int8", "int4"),
    summary="causal LMs: weight-only quantization of every nn.Linear, --quantize int8 (default, per channel) or "
    "int4 (groups of 32), fp32 activations, PyTorch's CPU weight-only kernels",
    build="lmkernel.compress.weightonly:build", load="lmkernel.compress.weightonly:load_model"))
