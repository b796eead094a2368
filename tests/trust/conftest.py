"""Guard fixtures: the serving tests' tiny classification and chat artifacts, shared rather than rebuilt."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SERVE = Path(__file__).parents[1] / "serve"
sys.path.insert(0, str(_SERVE))
_spec = importlib.util.spec_from_file_location("serve_conftest_for_trust", _SERVE / "conftest.py")
_serve = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_serve)

tiny_run = _serve.tiny_run
tiny_model = _serve.tiny_model
chat_run = _serve.chat_run
chat_model = _serve.chat_model
