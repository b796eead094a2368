"""onnx: export an encoder artifact to ONNX and run it with onnxruntime, optionally int8.

Export goes through ``torch.onnx.export(dynamo=True)``, the exporter PyTorch maintains (the
TorchScript one is deprecated), with batch and sequence length dynamic. ``--quantize int8``
applies onnxruntime's dynamic quantization (int8 weights per channel, uint8 activations), which
also quantizes the embedding Gather, so the file shrinks to about a quarter.

At load time ``OnnxModel`` stands in for the torch model: it is called like one and returns an
object with ``.logits`` (and ``.loss`` given labels), so ``Model.predict``, ``lmkernel eval`` and
the server use an ONNX artifact unchanged. onnxruntime is imported only here, on first use.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LmkError

ONNX_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask")
# Largest single-file ONNX model protobuf allows; larger weights go to an external .data file.
_PROTOBUF_LIMIT = 2**31 - 2**26


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise LmkError("ONNX artifacts need onnxruntime, which is not installed", where="onnxruntime",
                       fix="pip install onnxruntime onnx onnxscript") from e
    return onnxruntime


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Silence the exporter's and the quantizer's warnings for the duration of one call.

    They are not for users: torch.onnx lists torchvision ops it skips and notes that both
    inputs share one dynamic axis; onnxruntime's quantizer logs on the root logger about bool
    tensors it leaves alone and suggests pre-processing.
    """
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # one dynamic Dim shared by both inputs is intended
            warnings.filterwarnings("ignore", message=r".*The axis name: .* will not be used")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _LogitsOnly(nn.Module):
    """The exported graph: (input_ids, attention_mask) -> logits, nothing else."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _strip_debug_info(model: Any) -> None:
    """Drop the exporter's per-node debug metadata (stack traces with this machine's paths, FX
    node dumps): it is 3x the weights of a tiny model and says nothing at inference time."""
    for node in model.graph.all_nodes():
        node.metadata_props.clear()
        node.doc_string = None
        for value in node.outputs:
            value.metadata_props.clear()
    for value in [*model.graph.inputs, *model.graph.initializers.values()]:
        value.metadata_props.clear()


def export(model: nn.Module, path: Path) -> None:
    """Write ``model`` as ONNX with dynamic batch and sequence dimensions.

    Raises:
        LmkError: the exporter cannot trace the model (the first line of its error is shown).
    """
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > _PROTOBUF_LIMIT
    # Sizes of 1 would be specialised by torch.export, so the example batch is 2 x 8.
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    try:
        with _quiet_logs():
            program = torch.onnx.export(_LogitsOnly(model).eval(), example, dynamo=True, input_names=list(INPUTS),
                                        output_names=["logits"], dynamic_shapes={k: dims for k in INPUTS},
                                        external_data=external, verbose=False)
    except Exception as e:  # the exporter raises many types; the first line says what failed
        raise LmkError(f"ONNX export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                       where="--method onnx",
                       fix="run with --debug for the exporter's full report; --method int8 needs no export",
                       ) from e
    _strip_debug_info(program.model)
    program.save(str(path), external_data=external)


def quantize_int8(path: Path) -> None:
    """Replace the ONNX file at ``path`` by onnxruntime's dynamic int8 version of it.

    ``per_channel`` keeps accuracy close to fp32; ``reduce_range`` (7-bit weights) avoids the
    u8s8 saturation that AVX2/AVX512 CPUs without VNNI suffer (onnxruntime quantization docs).
    """
    _ort()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.stem + ".int8.onnx")
    with _quiet_logs():
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    tmp.replace(path)


def build(source: Any, tmp_dir: Path, *, quantize: str | None = None) -> dict[str, Any]:
    """Write the ONNX model folder (model.onnx + config) for a loaded fp32 artifact."""
    _ort()
    export(source.model, tmp_dir / ONNX_FILE)
    if quantize == "int8":
        quantize_int8(tmp_dir / ONNX_FILE)
    source.model.config.save_pretrained(str(tmp_dir))
    return {"weights": "onnx", "onnx": {"file": ONNX_FILE, "quantize": quantize, "inputs": list(INPUTS),
                                        "exporter": f"torch.onnx dynamo (torch {torch.__version__})"}}


class OnnxModel(nn.Module):
    """An onnxruntime session that quacks like a transformers classifier.

    It is an ``nn.Module`` only so that code written for torch models (``.eval()``,
    ``next(model.parameters()).device``, ``accelerator.prepare``) works unchanged; its one
    parameter is an empty CPU anchor, and every call runs the session.
    """

    def __init__(self, path: Path, config: Any = None, threads: int | None = None):
        super().__init__()
        ort = _ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()  # same threads as torch: fair timings
        # No busy-waiting between runs: spinning threads would steal the cores from whatever runs
        # next (a torch model measured alongside, the server's tokenizer) for a negligible gain.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
            raise LmkError(f"cannot load the ONNX model {path}: {str(e).splitlines()[0]}", where=str(path),
                           fix="the artifact is damaged; re-create it with `lmkernel compress --method onnx`") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = config
        self._anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        arrays = {name: feeds[name].detach().cpu().numpy() for name in self.input_names}
        logits = torch.from_numpy(self.session.run(["logits"], arrays)[0])  # (B, num_labels)
        loss = nn.functional.cross_entropy(logits.float(), labels.cpu()) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_model(model_dir: Path, card: dict[str, Any], task: Any) -> OnnxModel:
    """The artifact's OnnxModel (config.json rides along for code that reads ``model.config``)."""
    from transformers import AutoConfig

    path = model_dir / card.get("onnx", {}).get("file", ONNX_FILE)
    if not path.is_file():
        raise LmkError(f"ONNX artifact {model_dir} has no {path.name}", where=str(model_dir),
                       fix="the artifact is damaged; re-create it with `lmkernel compress --method onnx`")
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    return OnnxModel(path, config)
