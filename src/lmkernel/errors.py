"""The one error type users see.

Every failure a user can cause (a bad spec key, a malformed row, a missing model) is raised as an
``LmkError`` carrying *what* went wrong, *where* (file and line, spec key, CLI flag) and *how to fix
it*. The CLI prints these three parts without a traceback; programming errors still raise normally.
"""

from __future__ import annotations


class LmkError(Exception):
    """A user-facing error: what happened, where, and how to fix it."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.what]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)


class SpecErrors(LmkError):
    """Several spec problems reported at once, so users fix them in one pass."""

    def __init__(self, errors: list[LmkError], source: str):
        self.errors = errors
        what = f"{len(errors)} problem(s) in {source}:\n" + "\n".join(
            "- " + e.render().replace("\n", "\n  ") for e in errors
        )
        super().__init__(what)
