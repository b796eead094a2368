"""The house's layering, checked on the source (function-level imports included): stages never import
the orchestration (``pipeline``) or the CLI, and serving never imports training."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "lmkernel"
TOP = {"pipeline.py", "cli.py", "__init__.py"}  # the orchestration and the public entry points


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
    return found


def _sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if not (p.parent == SRC and p.name in TOP)]


def test_stages_do_not_import_the_pipeline_or_the_cli():
    top = ("lmkernel.pipeline", "lmkernel.cli")
    wrong = {f"{p.relative_to(SRC)} imports {name}" for p in _sources() for name in _imports(p)
             if name in top or name.startswith(tuple(t + "." for t in top))}
    assert not wrong, sorted(wrong)


def test_serving_does_not_import_training():
    wrong = {f"{p.relative_to(SRC)} imports {name}" for p in (SRC / "serve").rglob("*.py") for name in _imports(p)
             if name == "lmkernel.training" or name.startswith("lmkernel.training.")}
    assert not wrong, sorted(wrong)


def test_the_check_sees_relative_and_lazy_imports(monkeypatch):
    """The checker itself: function-level relative imports are found and resolved."""
    source = "def f():\n    from ..pipeline import run\n    from ..training import train\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    names = _imports(SRC / "compress" / "probe.py")
    assert "lmkernel.pipeline" in names and "lmkernel.training.train" in names
