"""prune: global unstructured magnitude pruning, or structured pruning of attention heads and
FFN neurons so the matrices really shrink.

Why this shape:

- Unstructured (the default, ``--structured none``): the given share of all linear weights with
  the smallest magnitude, pooled over every layer (global, so layers that matter keep more),
  become zero, through ``torch.nn.utils.prune``. The files and dense CPU kernels do not get
  smaller or faster from zeros (bench/compression.py measures it); it is the starting point for
  sparse formats and a measure of redundancy, and it keeps every architecture's shapes.
- Structured (``--structured heads,ffn``): a removed head takes its rows of Q/K/V and its columns of the
  attention output with it, a removed FFN neuron its row of the intermediate projection and its
  column of the output projection. What is left are smaller dense matrices, faster on any
  kernel; zeros inside dense matrices would cost the same time as before.
- Importance is first-order Taylor: |sum of w * dL/dw| over a head's or neuron's weights, summed
  over batches of the run's own training data, which estimates how much the loss changes when
  the structure is removed (Molchanov et al. 2019, https://arxiv.org/abs/1906.10771; Michel et
  al. 2019 for heads, https://arxiv.org/abs/1905.10650). A few backward passes, and unlike
  weight magnitude it knows the task.
- Every layer loses the same fraction (at least one head stays), so no layer is emptied.
- ``--finetune N`` recovers accuracy with N epochs of the run's own training through the
  ordinary training loop (its spec: data, batch size, seed; full fine-tuning learning rate).
- transformers 5 cannot describe per-layer head counts in config.json, so the artifact stores
  the shrunk tensors and the loader resizes the skeleton to them: weights "pruned".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LmkError
from .stored import WEIGHTS_FILE, damaged_artifact, skeleton

IMPORTANCE_EXAMPLES = 512  # training examples whose gradients rank heads and neurons


STRUCTURES = ("heads", "ffn")  # what --structured may name; "none" means unstructured


def parse_structured(value: str | None) -> tuple[str, ...]:
    """``--structured heads,ffn`` -> ("heads", "ffn"); None or "none" -> () (unstructured).

    Raises:
        LmkError: a part that is neither heads nor ffn.
    """
    if value is None or str(value).strip().lower() in ("", "none"):
        return ()
    parts = tuple(dict.fromkeys(p.strip().lower() for p in str(value).split(",") if p.strip()))
    bad = [p for p in parts if p not in STRUCTURES]
    if bad or not parts:
        raise LmkError(f"--structured {value!r}: unknown part(s) {', '.join(bad) or repr(value)}", where="--structured",
                       fix="use heads, ffn, heads,ffn, or none (global unstructured magnitude pruning)")
    return parts


def check_options(options: dict[str, Any]) -> None:
    """Raises LmkError for a missing or out-of-range ``--sparsity``, a bad ``--structured`` or a
    negative ``--finetune``."""
    sparsity = options.get("sparsity")
    if sparsity is None:
        raise LmkError("--method prune needs --sparsity", where="--sparsity",
                       fix="the fraction of weights (or with --structured, of heads and FFN neurons) to remove, "
                       "e.g. --sparsity 0.4")
    if not 0 < float(sparsity) < 1:
        raise LmkError(f"--sparsity {sparsity} is outside (0, 1)", where="--sparsity",
                       fix="the fraction of weights (or heads and FFN neurons) to remove, e.g. 0.4 removes 40%")
    parse_structured(options.get("structured"))
    if int(options.get("finetune") or 0) < 0:
        raise LmkError(f"--finetune {options['finetune']} is negative", where="--finetune",
                       fix="the number of recovery epochs: 0 (none) or more")


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The BERT-style transformer blocks (attention.self.query ... intermediate.dense, output.dense).

    Raises:
        LmkError: the model has no such blocks (another architecture).
    """
    layers = []
    for module in model.modules():
        try:
            linears = (module.attention.self.query, module.attention.output.dense,
                       module.intermediate.dense, module.output.dense)
        except AttributeError:
            continue
        if all(isinstance(x, nn.Linear) for x in linears) and hasattr(module.attention.self, "attention_head_size"):
            layers.append(module)
    if not layers:
        raise LmkError(f"--method prune does not support {type(model).__name__}: no BERT-style encoder blocks",
                       where="--method prune",
                       fix="prune handles BERT-style encoders (BERT, MiniLM, RoBERTa); try --method int8 or onnx")
    return layers


def _rows_taylor(linear: nn.Linear) -> torch.Tensor:
    """sum of w * grad per output row, bias included: one first-order term per output unit."""
    term = (linear.weight.detach() * linear.weight.grad).sum(1)
    return term if linear.bias is None else term + linear.bias.detach() * linear.bias.grad


def _cols_taylor(linear: nn.Linear) -> torch.Tensor:
    """sum of w * grad per input column (the bias belongs to no input)."""
    return (linear.weight.detach() * linear.weight.grad).sum(0)


def _layer_scores(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-head, per-neuron) first-order estimates for one block's current gradients."""
    attn, d = layer.attention.self, layer.attention.self.attention_head_size
    rows = _rows_taylor(attn.query) + _rows_taylor(attn.key) + _rows_taylor(attn.value)  # (H*d,)
    heads = (rows + _cols_taylor(layer.attention.output.dense)).view(-1, d).sum(1)  # (H,)
    neurons = _rows_taylor(layer.intermediate.dense) + _cols_taylor(layer.output.dense)  # (I,)
    return heads, neurons


def importance(model: nn.Module, layers: list[nn.Module],
               batches: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: |Taylor| scores of each head and each FFN neuron, summed over ``batches``."""
    model.eval()  # no dropout: the estimate is deterministic
    scores: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    for batch in batches:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        with torch.no_grad():
            now = [tuple(s.abs() for s in _layer_scores(layer)) for layer in layers]
        scores = now if scores is None else [(a[0] + b[0], a[1] + b[1]) for a, b in zip(scores, now)]
    model.zero_grad(set_to_none=True)
    return scores


def _rows(linear: nn.Linear, idx: torch.Tensor) -> nn.Linear:
    new = nn.Linear(linear.in_features, len(idx), bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[idx])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[idx])
    return new


def _cols(linear: nn.Linear, idx: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(idx), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, idx])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new


def shrink_layer(layer: nn.Module, heads: torch.Tensor, neurons: torch.Tensor) -> None:
    """Keep only ``heads`` and ``neurons`` (sorted indices) of one block, in place."""
    attn, d = layer.attention.self, layer.attention.self.attention_head_size
    rows = (heads[:, None] * d + torch.arange(d)).flatten()  # (kept heads * d,)
    for name in ("query", "key", "value"):
        setattr(attn, name, _rows(getattr(attn, name), rows))
    attn.num_attention_heads, attn.all_head_size = len(heads), len(rows)  # forward reshapes with -1 heads
    layer.attention.output.dense = _cols(layer.attention.output.dense, rows)
    layer.intermediate.dense = _rows(layer.intermediate.dense, neurons)
    layer.output.dense = _cols(layer.output.dense, neurons)


def _keep(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = max(1, round(len(scores) * (1 - sparsity)))
    return torch.topk(scores, k).indices.sort().values


def _need_spec(spec: Any, why: str) -> Any:
    if spec is None:
        raise LmkError(f"--method prune {why} needs the run's training data, but none was found", where="--data",
                       fix="prune a run directory written by `lmkernel run` (its spec.yaml is used) or pass "
                       "--data SPEC.yaml")
    return spec


def _features(source: Any, spec: Any) -> dict[str, list[dict]]:
    from ..data.read import read_data

    splits, _ = read_data(source.task, spec)
    return {name: source.task.encode(ds.examples, source.tokenizer, source.labels, spec.data.max_length)
            for name, ds in splits.items() if name in ("train", "validation")}


def _importance_batches(source: Any, train: list[dict], batch_size: int) -> list[dict[str, torch.Tensor]]:
    from ..data.batching import eval_batches

    chosen = train[:IMPORTANCE_EXAMPLES]
    pad = source.tokenizer.pad_token_id or 0
    return [source.task.collate([chosen[i] for i in idx], pad)
            for idx in eval_batches([len(f["input_ids"]) for f in chosen], batch_size)]


def recover(model: nn.Module, source: Any, spec: Any, features: dict[str, list[dict]], epochs: int) -> None:
    """Fine-tune the pruned model in place for ``epochs`` with the run's own training settings."""
    import tempfile

    from ..device import make_accelerator
    from ..training import train
    from ..tuning import get_method

    lr = spec.train.lr if spec.tuning.method == "full" else get_method("full").default_lr  # every weight trains now
    opts = spec.train.model_copy(update={"epochs": epochs, "lr": lr, "max_steps": None, "patience": None,
                                         "eval_every": None, "keep_optimizer": False})
    accelerator = make_accelerator(opts.precision)
    with tempfile.TemporaryDirectory() as tmp:  # the loop's checkpoints and event files are not kept
        train(model, source.task, features["train"], features.get("validation"), source.labels, opts, spec.seed,
              Path(tmp), accelerator, source.tokenizer.pad_token_id or 0, progress=False)
    model.eval()


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """Every nn.Linear except the task head (its few rows decide the output directly)."""
    heads = ("classifier", "score", "lm_head", "qa_outputs")
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not any(part in heads for part in name.split("."))]


def magnitude_prune(model: nn.Module, sparsity: float) -> None:
    """Global unstructured L1 pruning (``torch.nn.utils.prune``): the ``sparsity`` share of all
    prunable linear weights with the smallest magnitude, wherever they are, become zero. The
    masks stay attached (``weight_orig`` * ``weight_mask``) until ``prune.remove``, so a recovery
    fine-tune in between trains the kept weights only."""
    from torch.nn.utils import prune

    params = [(m, "weight") for _, m in prunable_linears(model)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))


def finish_magnitude_prune(model: nn.Module) -> float:
    """Make the masks permanent (plain weights with zeros again); returns the reached sparsity."""
    from torch.nn.utils import prune

    zeros = total = 0
    for _, m in prunable_linears(model):
        if prune.is_pruned(m):
            prune.remove(m, "weight")
        zeros += int((m.weight == 0).sum())
        total += m.weight.numel()
    return zeros / max(total, 1)


def _structured(model: nn.Module, source: Any, spec: Any, features: dict[str, list[dict]], sparsity: float,
                parts: tuple[str, ...]) -> list[tuple[int, int]]:
    layers = encoder_layers(model)
    scores = importance(model, layers, _importance_batches(source, features["train"], spec.train.batch_size))
    kept = []
    for layer, (heads, neurons) in zip(layers, scores):
        keep_heads = _keep(heads, sparsity if "heads" in parts else 0.0)
        keep_neurons = _keep(neurons, sparsity if "ffn" in parts else 0.0)
        shrink_layer(layer, keep_heads, keep_neurons)
        kept.append((len(keep_heads), len(keep_neurons)))
    return kept


def fits(source: Any, options: dict[str, Any], spec: Any) -> None:
    """Before any output exists: structured pruning needs BERT-style blocks and training data
    (gradients rank the structures), a recovery fine-tune needs training data."""
    if parse_structured(options.get("structured")):
        encoder_layers(source.model)
        _need_spec(spec, "--structured (importance from training gradients)")
    elif options.get("finetune"):
        _need_spec(spec, "--finetune")


def build(source: Any, tmp_dir: Path, *, sparsity: float, structured: str | None = None, finetune: int = 0,
          spec: Any = None) -> dict[str, Any]:
    """Write the pruned (and optionally recovered) model folder for a loaded fp32 artifact."""
    from safetensors.torch import save_file

    parts = parse_structured(structured)
    fits(source, {"structured": structured, "finetune": finetune}, spec)
    model = copy.deepcopy(source.model)  # the original is measured against the result afterwards
    for p in model.parameters():
        p.requires_grad_(True)  # a merged LoRA artifact comes back with its base weights frozen
    features = _features(source, spec) if spec is not None and (parts or finetune) else {}
    if parts:
        kept = _structured(model, source, spec, features, float(sparsity), parts)
        info = {"structured": list(parts), "importance": "first-order Taylor, |sum w*grad|",
                "importance_examples": min(IMPORTANCE_EXAMPLES, len(features["train"])),
                "heads_per_layer": [h for h, _ in kept], "ffn_per_layer": [n for _, n in kept]}
    else:
        magnitude_prune(model, float(sparsity))
        info = {"structured": [], "importance": "global weight magnitude (L1) over every linear layer but the head"}
    if finetune:
        recover(model, source, spec, features, finetune)
    if not parts:
        info["reached_sparsity"] = round(finish_magnitude_prune(model), 6)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp_dir / WEIGHTS_FILE),
              metadata={"format": "pt", "lmkernel": "pruned"})
    model.config.save_pretrained(str(tmp_dir))
    params = sum(p.numel() for p in model.parameters())
    return {"weights": "pruned", "total_params": params, "trainable_params": params,
            "pruning": {"sparsity": sparsity, **info, "finetune_epochs": finetune}}


def _fit_shapes(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Resize every Linear whose stored weight is smaller, and tell attention its head count
    (nothing to do after unstructured pruning: the shapes are the original ones)."""
    resized = False
    for name, module in list(model.named_modules()):
        stored = tensors.get(f"{name}.weight")
        if isinstance(module, nn.Linear) and stored is not None and stored.shape != module.weight.shape:
            parent, _, child = name.rpartition(".")
            out_features, in_features = stored.shape
            setattr(model.get_submodule(parent), child, nn.Linear(in_features, out_features,
                                                                  bias=module.bias is not None))
            resized = True
    if not resized:
        return
    for layer in encoder_layers(model):
        attn = layer.attention.self
        attn.all_head_size = attn.query.out_features
        attn.num_attention_heads = attn.all_head_size // attn.attention_head_size


def load_model(model_dir: Path, card: dict[str, Any], task: Any) -> nn.Module:
    """Rebuild the pruned model: skeleton from config.json, Linears resized to the stored tensors."""
    with damaged_artifact(model_dir, "pruned"):
        model, tensors = skeleton(model_dir, task)
        _fit_shapes(model, tensors)
        model.load_state_dict(tensors)
    return model
