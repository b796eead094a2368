"""Fuzzing the spec: generated YAML through the path `lmkernel validate` takes (``load_spec``, no data
checks). Invariant: a valid Spec or an LmkError with a message; never another exception, never a hang.

Inputs: generated trees (known and unknown keys; wrong types; inf, nan, huge, negative numbers; bools;
strings; nested structures) dumped as YAML; YAML text built by hand (anchors and aliases, alias bombs,
recursive aliases, deep nesting, huge numbers, broken syntax); the example specs with one field
changed; and ``--set`` overrides.
"""

from __future__ import annotations

import math
import signal
import string
from pathlib import Path

import pytest
import yaml
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st

from lmkernel import specyaml
from lmkernel.errors import LmkError
from lmkernel.spec import load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
HANG_S = 60  # a watchdog, not a timing: any input still loading after this long is a hang

KEYS = {
    "": ["seed", "task", "data", "model", "tokenizer", "tuning", "train", "output"],
    "task": ["type", "tag_column", "tag_scheme", "objective", "mask_prob", "whole_word_mask", "system_prompt",
             "source_column", "target_column", "max_new_tokens", "eval_samples", "source_lang", "target_lang"],
    "data": ["train", "validation", "test", "format", "text_column", "label_column", "split", "on_bad_rows",
             "max_length"],
    "model": ["name", "arch", "preset", "hidden_size", "num_layers", "num_heads", "num_kv_heads"],
    "tokenizer": ["vocab_size", "min_frequency", "special_tokens", "lowercase", "max_texts"],
    "tuning": ["method", "merge", "lora", "adalora", "ia3", "prompt", "prefix", "adapter", "full", "freeze"],
    "train": ["epochs", "max_steps", "batch_size", "eval_batch_size", "lr", "weight_decay", "warmup_ratio",
              "grad_clip", "grad_accum", "precision", "group_by_length", "eval_every", "checkpoint_every",
              "metric", "patience", "keep_optimizer", "log_every", "threads"],
    "output": ["dir"],
}
WORDS = ["classification", "ner", "chat", "pretrain", "translation", "lora", "full", "freeze", "adalora", "mlm",
         "clm", "encoder", "decoder", "auto", "csv", "jsonl", "skip", "error", "minilm", "x.csv", "bf16", "tiny"]

ints = st.one_of(st.integers(-3, 10), st.integers(-(2**70), 2**70), st.sampled_from([0, 2**31, 2**32, 2**63, -1]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([math.inf, -math.inf, math.nan, 1e308, 1e-320, 0.5, 3.0]))
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=20),
                  st.text(alphabet=string.digits + "e.-+_", max_size=8))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
plausible = st.one_of(st.integers(1, 64), st.floats(0.001, 0.9), st.sampled_from(WORDS), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)), max_leaves=12)


@st.composite
def trees(draw) -> dict:
    """A spec-shaped mapping: mostly known sections and keys, some unknown ones, any values."""
    tree: dict = {}
    for section in draw(st.lists(st.sampled_from(KEYS[""] + ["extra", "trian"]), max_size=6, unique=True)):
        if section == "seed" or draw(st.integers(0, 9)) == 0:
            tree[section] = draw(values)
            continue
        keys = KEYS.get(section, []) + ["unknown_key", "epoch", "lrr"]
        tree[section] = {k: draw(st.one_of(st.sampled_from(WORDS), values))
                         for k in draw(st.lists(st.sampled_from(keys), max_size=5, unique=True))}
    if "data" not in tree and draw(st.booleans()):
        tree["data"] = {"train": "x.csv"}  # the one required key, so more trees get past it
    return tree


def _dump(tree: object) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=10_000)


@st.composite
def mutated_examples(draw) -> str:
    """An example spec with one field replaced, removed or added."""
    path = draw(st.sampled_from(EXAMPLES))
    tree = specyaml.load(path.read_text(encoding="utf-8")) or {}
    sections = [k for k, v in tree.items() if isinstance(v, dict)]
    action = draw(st.sampled_from(["replace", "remove", "add", "top"]))
    if action == "top" or not sections:
        tree[draw(st.sampled_from(KEYS[""] + ["seeds"]))] = draw(values)
        return _dump(tree)
    section = draw(st.sampled_from(sections))
    keys = list(tree[section])
    if action == "replace" and keys:
        tree[section][draw(st.sampled_from(keys))] = draw(st.one_of(plausible, values))
    elif action == "remove" and keys:
        del tree[section][draw(st.sampled_from(keys))]
    else:
        tree[section][draw(st.sampled_from(KEYS.get(section, []) + ["bogus"]))] = draw(values)
    return _dump(tree)


@st.composite
def hostile_yaml(draw) -> str:
    """YAML text no dumper writes: aliases, bombs, recursion, deep nesting, long numbers, bad syntax."""
    kind = draw(st.sampled_from(["bomb", "recursive", "merge", "deep_flow", "deep_block", "long_int",
                                 "long_float", "anchored", "tags", "garbage", "yaml11"]))
    data = "data: {train: x.csv}\n"
    if kind == "bomb":
        fan, levels = draw(st.integers(2, 12)), draw(st.integers(1, 9))
        lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
        lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]" for i in range(1, levels)]
        where = draw(st.sampled_from([f"data: {{train: *l{levels - 1}}}", f"train: {{lr: *l{levels - 1}}}\n" + data,
                                      f"tokenizer: {{special_tokens: *l{levels - 1}}}\n" + data]))
        return "\n".join(lines) + "\n" + where + "\n"
    if kind == "recursive":
        return draw(st.sampled_from(["a: &a {x: *a}\n", "a: &a [*a]\n", "train: &t {lr: 1, x: [*t]}\n",
                                     "b: &b {c: &c {d: *b}}\n"])) + data
    if kind == "merge":
        return draw(st.sampled_from(["a: &a {<<: *a}\n", "t: &t {epochs: 2}\ntrain: {<<: *t, lr: 1e-3}\n",
                                     "t: &t {epochs: 2}\ntrain: {<<: [*t, *t]}\n"])) + data
    if kind == "deep_flow":
        n = draw(st.sampled_from([5, 31, 32, 33, 100, 3000]))
        o, c = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        return data + "train: {lr: " + o * n + "1" + c * n + "}\n"
    if kind == "deep_block":
        n = draw(st.integers(1, 60))
        return data + "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "v\n"
    if kind == "long_int":
        number = draw(st.sampled_from(["", "-"])) + "9" * draw(st.sampled_from([19, 20, 63, 64, 65, 4300, 5000]))
        return draw(st.sampled_from([f"seed: {number}\n" + data, f"train: {{epochs: {number}}}\n" + data,
                                     f"data: {{train: x.csv, max_length: {number}}}\n"]))
    if kind == "long_float":
        return data + f"train: {{lr: 1{'0' * draw(st.integers(300, 5000))}.5}}\n"
    if kind == "anchored":
        return "common: &c {batch_size: 8, lr: 1e-4}\ntrain: *c\n" + data
    if kind == "tags":
        tag = draw(st.sampled_from(["!!python/object:os.system", "!!binary", "!!set", "!!omap", "!foo", "!!str",
                                    "!!float", "!!int", "!!timestamp", "!!bool"]))
        return data + f"train: {{epochs: {tag} {draw(st.sampled_from(['3', 'abc', '1e5', '', '[1]']))}}}\n"
    if kind == "yaml11":
        word = draw(st.sampled_from(["yes", "no", "on", "off", "~", "0x1F", "0o17", "017", "1:30", "1_000",
                                     "2001-12-14", ".5", "+1e3", "1.0e5", "1E-4", "0b101", ".NaN", "-.inf"]))
        return data + f"train: {{{draw(st.sampled_from(KEYS['train']))}: {word}}}\n"
    return draw(st.text(alphabet=":{}[]-&*!|>'\"#%@`\t\n ,?abc123", max_size=80))


@st.composite
def overrides(draw, plausible_only: bool = False) -> list[str]:
    """``--set`` items: any key with any value, or (plausible_only) a train/tuning key with a sensible one."""
    if plausible_only:
        key = draw(st.sampled_from(["train.epochs", "train.batch_size", "train.lr", "train.warmup_ratio", "seed",
                                    "train.grad_clip", "train.threads", "data.max_length", "tuning.lora.r"]))
        return [f"{key}={draw(st.sampled_from(['1', '2', '8', '0.1', '1e-4', '2e-5', '0.5']))}"]
    keys = [f"{s}.{k}" if s else k for s, ks in KEYS.items() for k in ks] + ["a..b", ".x", "train.epochs.x", "x"]
    raw = st.one_of(st.sampled_from(["1", "1e-4", ".inf", "true", "'32'", "[1, 2]", "{a: 1}", "", "&a [*a]",
                                     "9" * 70, ":", "- x", "{", "null"]), texts)
    return [f"{draw(st.sampled_from(keys))}={draw(raw)}" for _ in range(draw(st.integers(1, 3)))]


CASES = st.one_of(
    st.tuples(trees().map(_dump), st.just([])),
    st.tuples(mutated_examples(), st.just([])),
    st.tuples(hostile_yaml(), st.just([])),
    st.tuples(st.sampled_from([p.read_text(encoding="utf-8") for p in EXAMPLES]), overrides()),
    st.tuples(trees().map(_dump), overrides()),
    st.tuples(st.sampled_from([p.read_text(encoding="utf-8") for p in EXAMPLES]), overrides(plausible_only=True)),
)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check(case: tuple[str, list[str]], folder: Path, tally: Tally) -> str | None:
    """Load one generated spec; return a failure description, or None when the invariant holds."""
    text, sets = case
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    tally.tried += 1
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        load_spec(path, sets)
        tally.accepted += 1
        return None
    except LmkError as e:
        if not (e.what and e.what.strip()) or len(str(e)) > 20_000:
            failure = f"LmkError without a readable message ({len(str(e))} chars) for {text[:200]!r} {sets}"
            tally.failures.append(failure)
            return failure
        tally.clear_errors += 1
        return None
    except _Hang:
        failure = f"hang over {HANG_S}s for {text[:200]!r} {sets}"
    except BaseException as e:  # noqa: BLE001 (any other exception breaks the invariant)
        failure = f"{type(e).__name__}: {str(e)[:200]} for {text[:300]!r} {sets}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    tally.failures.append(failure)
    return failure


def test_spec_fuzz_fast(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-spec")
    tally = Tally("spec")

    @FAST
    @given(case=CASES)
    def one(case):
        failure = check(case, folder, tally)
        assert failure is None, failure

    one()
    assert tally.tried > 0 and not tally.failures


@pytest.mark.slow
def test_spec_fuzz_slow(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-spec-slow")
    tally = Tally("spec")

    @SLOW
    @given(case=CASES)
    def one(case):
        check(case, folder, tally)

    one()
    print(tally.line())
    assert tally.tried >= SLOW.max_examples
    kinds = sorted({f.split(" for ")[0][:120] for f in tally.failures})
    assert not tally.failures, f"{len(kinds)} kinds of failure: {kinds[:20]}; e.g. {tally.failures[:3]}"
