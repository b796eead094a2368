"""The CLI as tests call it: ``cli("run", spec, "-q", code=2)`` invokes ``lmkernel`` in-process and checks the
exit code, showing the output (and any exception) when it differs."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner, Result

from lmkernel.cli import app


def cli(*args: Any, code: int = 0) -> Result:
    """Run ``lmkernel ARGS`` (each argument as ``str``) and assert its exit code."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result
