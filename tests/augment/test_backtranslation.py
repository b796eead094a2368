"""Back-translation plumbing through lmkernel's generation API with the tiny Llama (its output is noise:
this checks rows, labels and determinism, not translation quality)."""

from __future__ import annotations

import pytest

from lmkernel.augment.backtranslate import back_translate
from lmkernel.augment.options import BackTranslation
from lmkernel.errors import LmkError
from lmkernel.tasks.base import Example


def test_back_translation_adds_one_labelled_row_per_text(tiny_llama):
    rows = [Example("the cat sat on the mat", "a", "f", 1), Example("这家酒店很好", "b", "f", 2),
            Example("a dog runs in the park", "a", "f", 3)]
    opts = BackTranslation(model=str(tiny_llama), pivot_language="German", max_new_tokens=8, max_rows=2,
                           repetition_penalty=3.0)  # the random model repeats newlines otherwise
    out = back_translate(rows, opts)
    again = back_translate(rows, opts)
    assert [r.text for r in out] == [r.text for r in again]  # greedy: deterministic
    assert 0 < len(out) <= 2 and all(r.fields["augmented"] == "back_translation" for r in out)
    by_line = {r.line: r for r in rows}
    assert all(r.label == by_line[r.line].label and r.text != by_line[r.line].text and r.line in (1, 2)
               for r in out)


def test_missing_back_translation_model_is_a_clear_error(tmp_path):
    opts = BackTranslation(model=str(tmp_path / "nope"))
    with pytest.raises(LmkError) as e:
        back_translate([Example("x", "a", "f", 1)], opts)
    assert e.value.where == "data.augment.back_translation.model" and "was not found" in e.value.what


def test_missing_model_fails_before_training(tmp_path, spec_file):
    from lmkernel.pipeline import run
    from lmkernel.spec import load_spec

    text = spec_file.read_text(encoding="utf-8").replace(
        "data: {", "data: {augment: {back_translation: {model: " + str(tmp_path / "nope") + "}}, ")
    path = tmp_path / "bt.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LmkError, match="back-translation model"):
        run(load_spec(path), progress=False)
    assert not (tmp_path / "runs").exists()
