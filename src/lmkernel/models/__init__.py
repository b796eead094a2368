"""Model stage: turn ``model.name`` into a local checkpoint directory; never touch a hub."""

from .resolve import ALIASES, load_tokenizer, resolve_model_path

__all__ = ["ALIASES", "load_tokenizer", "resolve_model_path"]
