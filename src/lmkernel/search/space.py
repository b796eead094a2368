"""The search space: spec dotted keys with a range or a list of choices, read from YAML or the method's defaults.

A space file maps spec keys to a range, the same keys ``--set`` takes::

    train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    train.batch_size: {type: categorical, choices: [8, 16, 32]}
    train.epochs: {type: int, low: 1, high: 4}

Every key is checked against the spec by loading it with the range's ends set, so a typo or a value the
spec refuses is reported before any trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError

TYPES = ("float", "int", "categorical")
_FIX = ("write KEY: {type: float|int, low: A, high: B[, log: true][, step: S]} or "
        "KEY: {type: categorical, choices: [...]}")


@dataclass(frozen=True)
class Param:
    """One searched spec key: a numeric range (``low``..``high``, optionally log-scaled or stepped) or choices."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def distribution(self) -> Any:
        """The optuna distribution this range samples from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def ends(self) -> list[Any]:
        """The values that bound the range: every one must be a value the spec accepts."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def to_json(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def _number(value: Any, key: str, name: str, where: str, want_int: bool) -> float | int:
    ok = isinstance(value, int) if want_int else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        raise LmkError(f"search space {key}: {name} must be {'an integer' if want_int else 'a number'}, got "
                       f"{value!r}", where=where, fix=_FIX)
    return value


def parse_param(key: str, body: Any, where: str) -> Param:
    """One entry of a space file, with every malformed or empty range refused by name."""
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise LmkError(f"search space key {key!r} is not a dotted spec key", where=where,
                       fix="use the keys --set takes, e.g. train.lr")
    if not isinstance(body, dict):
        raise LmkError(f"search space {key}: expected a mapping with a type, got {body!r}", where=where, fix=_FIX)
    kind = body.get("type")
    if kind not in TYPES:
        raise LmkError(f"search space {key}: type must be one of {', '.join(TYPES)}, got {kind!r}", where=where,
                       fix=_FIX)
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise LmkError(f"search space {key}: unknown field(s) {', '.join(map(str, extra))} for type {kind}",
                       where=where, fix=_FIX)
    if kind == "categorical":
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise LmkError(f"search space {key}: choices is empty or missing", where=where,
                           fix="list at least one value: choices: [8, 16, 32]")
        if len(set(map(repr, choices))) < len(choices):
            raise LmkError(f"search space {key}: choices repeat a value", where=where, fix="list each value once")
        if any(not isinstance(c, str | int | float | bool) and c is not None for c in choices):
            raise LmkError(f"search space {key}: choices must be plain values (numbers, strings, true/false)",
                           where=where, fix="list scalars, e.g. choices: [8, 16, 32]")
        return Param(key, kind, choices=tuple(choices))
    return _numeric(key, kind, body, where)


def _numeric(key: str, kind: str, body: dict, where: str) -> Param:
    want_int = kind == "int"
    for name in ("low", "high"):
        if name not in body:
            raise LmkError(f"search space {key}: {name} is missing", where=where, fix=_FIX)
    low = _number(body["low"], key, "low", where, want_int)
    high = _number(body["high"], key, "high", where, want_int)
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise LmkError(f"search space {key}: log must be true or false", where=where, fix=_FIX)
    step = body.get("step")
    if step is not None and (_number(step, key, "step", where, want_int) <= 0 or log):
        raise LmkError(f"search space {key}: step must be positive and cannot go with log: true", where=where,
                       fix="drop step, or set log: false")
    if low > high:
        raise LmkError(f"search space {key}: the range is empty (low {low} > high {high})", where=where,
                       fix=f"set low below high, e.g. low: {high}, high: {low}")
    if log and low <= 0:
        raise LmkError(f"search space {key}: a log range needs low > 0, got {low}", where=where,
                       fix="set low to a positive value, or log: false")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def parse_space(tree: Any, where: str) -> list[Param]:
    """A whole space: a non-empty mapping of spec keys to ranges."""
    if not isinstance(tree, dict) or not tree:
        raise LmkError("the search space is empty or not a mapping of spec keys to ranges", where=where,
                       fix="e.g. train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}")
    return [parse_param(key, body, f"{where}, key {key}") for key, body in tree.items()]


def read_space(path: Path) -> list[Param]:
    """A space file (YAML)."""
    import yaml

    from .. import specyaml  # the spec's own YAML reading: 1e-5 is a number, as in a spec, not a string

    try:
        tree = specyaml.load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise LmkError(f"cannot read the search space {path}: {e.strerror or e}", where="--space",
                       fix="pass a readable YAML file") from None
    except yaml.YAMLError as e:
        raise LmkError(f"search space is not valid YAML: {str(getattr(e, 'problem', None) or e)[:200]}",
                       where=str(path), fix="fix the YAML syntax (indentation, colons, braces)") from None
    return parse_space(tree, str(path))


def default_space(spec: Any) -> list[Param]:
    """What a user would search first for this spec's method: the learning rate (log-uniform, a decade either
    side of the method's default), batch size, epochs, weight decay, warmup, and LoRA's rank and alpha."""
    from ..tuning import get_method

    method = get_method(spec.tuning.method)
    lr = method.lr(spec.tuning.options())
    space = [
        Param("train.lr", "float", low=float(f"{lr / 10:.3g}"), high=float(f"{lr * 10:.3g}"), log=True),
        Param("train.batch_size", "categorical", choices=(8, 16, 32)),
        Param("train.epochs", "int", low=1, high=max(4, spec.train.epochs)),
        Param("train.weight_decay", "float", low=0.0, high=0.1),
        Param("train.warmup_ratio", "float", low=0.0, high=0.2),
    ]
    if method.name == "lora":
        space += [Param("tuning.lora.r", "categorical", choices=(4, 8, 16)),
                  Param("tuning.lora.alpha", "categorical", choices=(8, 16, 32))]
    return space


def set_args(params: dict[str, Any]) -> list[str]:
    """``--set key=value`` arguments for one trial's values (YAML-parsed by the spec loader)."""
    import json

    return [f"{key}={json.dumps(value) if isinstance(value, str) else value}" for key, value in params.items()]


def check_space(space: list[Param], spec_path: Path, sets: list[str]) -> None:
    """Load the spec with each end of each range: an unknown key or a value the spec refuses fails here,
    named, before any trial runs."""
    from ..spec import load_spec

    for p in space:
        for value in p.ends():
            try:
                load_spec(spec_path, [*sets, *set_args({p.key: value})])
            except LmkError as e:
                raise LmkError(f"search space {p.key}: the spec refuses {p.key}={value!r}: {e.what}",
                               where=f"search space key {p.key}",
                               fix=e.fix or "use a key and range the spec accepts (`lmkernel fields` lists them)",
                               ) from None
