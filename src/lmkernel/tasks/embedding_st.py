"""The sentence-transformers layout of an embedding artifact: module files beside the encoder.

``SentenceTransformer(folder)`` reads ``modules.json`` and builds Transformer (the encoder in the folder
itself) → Pooling (mean, ``1_Pooling/config.json``) → Normalize (``2_Normalize``), which is exactly
what lmkernel's ``embed`` computes. The class paths are the long-standing ``sentence_transformers.models``
ones, which every sentence-transformers release since 2.x resolves.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..fsutil import atomic_write_json

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def pooling_config(dim: int) -> dict[str, object]:
    """Mean pooling only, as sentence-transformers writes it."""
    return {"word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True}


def write_sentence_transformers_files(directory: Path, max_seq_length: int) -> None:
    """Write the module files into ``directory``, which already holds the encoder's config.json."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    dim = int(config["hidden_size"])
    limit = min(max_seq_length, int(config.get("max_position_embeddings") or max_seq_length))
    atomic_write_json(directory / "modules.json", MODULES)
    atomic_write_json(directory / "sentence_bert_config.json", {"max_seq_length": limit, "do_lower_case": False})
    atomic_write_json(directory / "config_sentence_transformers.json",
                      {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    (directory / "1_Pooling").mkdir(exist_ok=True)
    atomic_write_json(directory / "1_Pooling" / "config.json", pooling_config(dim))
    (directory / "2_Normalize").mkdir(exist_ok=True)
