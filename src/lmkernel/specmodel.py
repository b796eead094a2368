"""The base of every spec section, tuning method's options and task's options (plugins inherit it).

Values are taken as written, not coerced: ``true`` is not the number 1, ``"32"`` is not an integer,
``3.0`` is not a whole-number count, and ``.inf``/``.nan`` (or a float literal beyond the float range)
are not numbers a run can train with. A value that slips through lax coercion fails much later,
in the middle of a run or with a traceback; refused here, it is one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, field_validator

INT_LIMIT = 2**63 - 1  # what torch and NumPy hold in an int64: any count or size beyond it cannot be used
SEED_MAX = 2**32 - 1  # NumPy's seed range



def _no_nul(path: Path) -> Path:
    if "\x00" in str(path):
        raise ValueError("a path cannot contain a NUL character")
    return path


SpecPath = Annotated[Path, Strict(False), AfterValidator(_no_nul)]  # a path field: YAML writes it as a string


class SpecModel(BaseModel):
    """Strict types, finite floats, no unknown keys. A path field is typed ``SpecPath`` (strict mode
    alone would want a Path object where YAML gives a string)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _int64(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value <= INT_LIMIT:
            raise ValueError(f"integer out of range: at most {INT_LIMIT} (2**63-1)")
        return value
