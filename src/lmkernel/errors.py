"""The one error type users see.

Every failure a user can cause (a bad spec key, a malformed row, a missing model) is raised as an
``LmkError`` carrying *what* went wrong, *where* (file and line, spec key, CLI flag) and *how to fix
it*. The CLI prints these three parts without a traceback; programming errors still raise normally.
"""

from __future__ import annotations

import reprlib


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
    """Several spec problems reported at once, so users fix them in one pass (the first ``shown`` of
    them: a list of thousands of wrong values is one mistake, not thousands of lines)."""

    def __init__(self, errors: list[LmkError], source: str, shown: int = 20):
        self.errors = errors
        more = len(errors) - shown
        what = f"{len(errors)} problem(s) in {source}:\n" + "\n".join(
            "- " + e.render().replace("\n", "\n  ") for e in errors[:shown]
        ) + (f"\n- ... and {more} more" if more > 0 else "")
        super().__init__(what)


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxdict = _BRIEF.maxtuple = _BRIEF.maxset = 4
_BRIEF.maxlevel = 2
_BRIEF.maxlong = 40


def brief(value: object) -> str:
    """``repr(value)`` cut to a line: a value quoted in a message may be huge (a spec's aliases expand
    to millions of items, a string may be a whole file)."""
    try:
        return _BRIEF.repr(value)
    except ValueError:  # an int past Python's int-to-string digit limit
        return f"<an integer of {value.bit_length() if isinstance(value, int) else '?'} bits>"
