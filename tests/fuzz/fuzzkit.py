"""The property/fuzz suite's shared settings: bounded and deterministic in CI, large under `-m slow`.

Imported as `fuzzkit` (not from conftest.py: every test folder has a conftest module, and
`from conftest import` picks whichever pytest imported last).

Each class (spec, data, http) has a fast test (a few hundred generated inputs, part of `make test`)
and a `slow` test of thousands that prints one `fuzz[class]: ...` line, the figures
docs/reliability.md records. Invariant everywhere: a clear LmkError or a 4xx, never a traceback,
a 5xx, a hang or a silent row loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("slow", max_examples=3500, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("LMK_FUZZ_PROFILE", "ci"))

FAST = settings(max_examples=int(os.environ.get("LMK_FUZZ_FAST", "150")), derandomize=True, **_COMMON)
SLOW = settings(max_examples=int(os.environ.get("LMK_FUZZ_SLOW", "3500")), derandomize=True, **_COMMON)


@dataclass
class Tally:
    """Counts what a fuzz run saw, so the slow run can print its figures in one line."""

    name: str
    tried: int = 0
    accepted: int = 0
    clear_errors: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"fuzz[{self.name}]: tried {self.tried}, accepted {self.accepted}, "
                f"clear errors {self.clear_errors}, failures {len(self.failures)}")
