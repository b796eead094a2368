"""A spec typed in the page: checked as ``lmkernel validate`` would, errors with the line they are on.

Relative paths in the editor are relative to the folder the console was started in (like a spec file there);
the run goes to ``<console folder>/<name>`` (``output.dir`` is set to it). The checked tree is what a job runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import LmkError, SpecErrors

SOURCE = "spec"
_LINE = re.compile(r"\bline (\d+)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise LmkError(f"run name {name!r} is not a plain folder name", where="name",
                       fix="use letters, digits, '.', '_' or '-' (at most 64), e.g. sentiment-lora")
    return name


def spec_tree(text: str, base: Path, output_dir: Path) -> dict[str, Any]:
    """The editor's text as a validated spec tree with absolute paths.

    Raises:
        LmkError: not YAML, not a spec, or a problem in a field (SpecErrors: all of them).
    """
    import yaml

    from .. import specyaml
    from ..spec import parse_spec, resolve_relative

    try:
        tree = specyaml.load(text)
    except specyaml.SpecYAMLError as e:
        raise LmkError(f"spec refused: {e.problem}", where=_mark(e),
                       fix="a spec is a few nested sections of plain values: write them out") from None
    except yaml.YAMLError as e:
        raise LmkError(f"spec is not valid YAML: {str(getattr(e, 'problem', None) or e)[:300]}", where=_mark(e),
                       fix="fix the YAML syntax (indentation, colons, quotes)") from None
    tree = {} if tree is None else tree
    if isinstance(tree, dict):
        resolve_relative(tree, base)
        tree.setdefault("output", {})
        if isinstance(tree["output"], dict):  # the console keeps its runs in its folder, named in the page
            tree["output"]["dir"] = str(output_dir)
    parse_spec(tree, source=SOURCE, text=text)
    return tree


def check(text: str, base: Path, output_dir: Path, data: bool = False) -> list[str]:
    """Notes of a spec that passed (with ``data``: what was read of each data file)."""
    tree = spec_tree(text, base, output_dir)
    if not data:
        return []
    from ..data.check import check_data
    from ..spec import parse_spec

    return check_data(parse_spec(tree, source=SOURCE, text=text))


def problems(error: LmkError) -> list[dict[str, Any]]:
    """An LmkError as the page shows it: one item per problem, with the editor line when known."""
    found = error.errors if isinstance(error, SpecErrors) else [error]
    out = []
    for e in found:
        line = _LINE.search(e.where or "")
        out.append({"what": e.what, "where": e.where, "fix": e.fix, "line": int(line.group(1)) if line else None})
    return out


def _mark(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"{SOURCE} line {mark.line + 1}" if mark else SOURCE
