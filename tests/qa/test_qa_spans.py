"""Windows over a long context and the span chosen over them, and the no-answer threshold."""

from __future__ import annotations

import pytest
import torch

from lmkernel.models.resolve import load_tokenizer
from lmkernel.tasks.qa_spans import Candidates, best_answer, encode_windows, window_candidates, window_plan

WORDS = "the film was great and the hotel was awful but the book was lovely".split()


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(tiny_bert)


def _context_with_answer_at(n_words: int, at: int) -> tuple[str, tuple[int, int]]:
    words = [WORDS[i % len(WORDS)] for i in range(n_words)]
    words[at:at + 2] = ["superb", "service"]  # the answer: two words
    context = " ".join(words)
    start = context.index("superb service")
    return context, (start, start + len("superb service"))


def test_answer_across_a_window_boundary_is_learned_from_the_window_holding_it(tokenizer):
    # max_length 24, question "the book" (2 tokens): 19 context tokens (one a word) a window, overlap 6
    context, span = _context_with_answer_at(60, 18)  # words 18-19: the first window ends at word 18
    windows = encode_windows(tokenizer, ["the book"], [context], [[span]], 24, 6, 64)
    assert len(windows) > 2 and all(len(w.input_ids) <= 24 for w in windows)
    holding = [w for w in windows if w.start != w.cls]
    assert holding, "some window holds the whole answer"
    for w in windows:
        inside = [o for o in w.offsets if o is not None]
        whole = inside[0][0] <= span[0] and inside[-1][1] >= span[1]
        assert (w.start != w.cls) == whole
        if whole:
            assert (w.offsets[w.start][0], w.offsets[w.end][1]) == span
    first = windows[0]
    cut = [o for o in first.offsets if o is not None]
    assert cut[0][0] <= span[0] < cut[-1][1] < span[1]  # the first window cuts the answer: it learns [CLS]
    assert first.start == first.cls


def test_spans_are_chosen_over_all_windows(tokenizer):
    context, span = _context_with_answer_at(60, 18)
    windows = encode_windows(tokenizer, ["the book"], [context], None, 24, 6, 64)
    cands = []
    for w in windows:
        start, end = torch.zeros(len(w.input_ids)), torch.zeros(len(w.input_ids))
        inside = [i for i, o in enumerate(w.offsets) if o is not None]
        if w.offsets[inside[0]][0] <= span[0] and w.offsets[inside[-1]][1] >= span[1]:
            a = next(i for i in inside if w.offsets[i][0] == span[0])
            start[a], end[a + 1] = 6.0, 6.0  # the window holding it whole is sure
        else:
            start[inside[-1]], end[inside[-1]] = 4.0, 4.0  # the others point at their last token
        cands.append(window_candidates(start, end, w.offsets, w.cls, 0, 5, 30))
    assert best_answer(context, cands, False, 0.0) == {**best_answer(context, cands, False, 0.0),
                                                       "answer": "superb service", "start": span[0], "end": span[1]}


def test_spans_respect_the_context_order_and_length():
    offsets = [None, None, (0, 3), (4, 8), (9, 12), None]  # [CLS] q [SEP]? c c c [SEP]
    start = torch.tensor([0.0, 9.0, 1.0, 0.0, 5.0, 9.0])  # the best starts are outside the context
    end = torch.tensor([0.0, 0.0, 7.0, 0.0, 0.0, 0.0])  # the best end (2) is before the best start (4)
    c = window_candidates(start, end, offsets, 0, 0, 6, 30)
    assert all(offsets[2][0] <= s < e for _, s, e, _ in c.spans)
    assert c.spans[0][1:3] == (0, 3)  # start 2 - end 2, since (4, 2) is backwards
    assert not window_candidates(start, end, offsets, 0, 0, 6, 0).spans  # no span fits max_answer_length 0


def test_no_answer_threshold():
    cands = [Candidates(0, null=5.0, null_prob=0.6, spans=[(3.0, 0, 4, 0.3)]),
             Candidates(0, null=7.0, null_prob=0.8, spans=[(2.0, 5, 9, 0.1)])]
    context = "abcd efgh"
    assert best_answer(context, cands, True, 0.0) == {"answer": "", "score": 0.6, "start": -1, "end": -1}
    assert best_answer(context, cands, True, 2.5)["answer"] == "abcd"  # null 5 - span 3 = 2 <= 2.5
    assert best_answer(context, cands, False, 0.0) == {"answer": "abcd", "score": 0.3, "start": 0, "end": 4}
    assert best_answer(context, [], False, 0.0)["answer"] == ""


def test_window_plan_fits_the_length():
    assert window_plan(384, 128, 64) == (64, 128)
    assert window_plan(64, 128, 64) == (32, 14)  # the question takes at most half; the overlap half the rest
    with pytest.raises(Exception, match="no room for a context"):
        window_plan(12, 4, 64)
