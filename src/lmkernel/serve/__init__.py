"""HTTP serving of lmkernel artifacts (FastAPI + uvicorn).

``create_app(settings, task=..., load=...)`` builds an app around an injected predictor loader;
``serve(run_dir, host=, port=, settings=)`` is what ``lmkernel serve`` runs. Imports are lazy
so ``lmkernel --help`` does not pay for FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    if name == "ServeSettings":
        from .settings import ServeSettings

        return ServeSettings
    raise AttributeError(f"module 'lmkernel.serve' has no attribute {name!r}")
