"""lmkernel: the whole life of a language model from one YAML spec.

Public Python API::

    import lmkernel
    result = lmkernel.run("examples/sentiment.yaml")      # train + evaluate + report
    model = lmkernel.load(result.run_dir)                   # or "runs/<run>"
    model.predict(["great film", "太差了"])

Heavy libraries (torch, transformers) load on first use, so importing lmkernel stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LmkError

if TYPE_CHECKING:
    from .artifact import Model
    from .rundir import RunResult
    from .spec import Spec

__version__ = "0.1.0"
__all__ = ["LmkError", "Spec", "load", "load_spec", "run", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Spec":  # pydantic models load on first use, keeping `import lmkernel` light
        from .spec import Spec

        return Spec
    raise AttributeError(f"module 'lmkernel' has no attribute {name!r}")


def load(path: str | Path) -> Model:
    """Load a run directory (or its model/ folder) for prediction."""
    from .artifact import load as _load

    return _load(path)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read and validate a YAML spec; ``overrides`` are "key.path=value" strings."""
    from .spec import load_spec as _load_spec

    return _load_spec(path, overrides)


def run(spec: str | Path | Spec, overrides: list[str] | None = None, resume: bool = False, **kwargs: Any) -> RunResult:
    """Train and evaluate per a spec (path or Spec object); returns the run dir and metrics."""
    from .pipeline import run as _run
    from .spec import Spec as _Spec

    if not isinstance(spec, _Spec):
        spec = load_spec(spec, overrides)
    return _run(spec, resume=resume, **kwargs)
