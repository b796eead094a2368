"""Chat records: the assistant-only loss mask, long conversations, bad input."""

from __future__ import annotations

import pytest
from lm_helpers import write_jsonl
from transformers import AutoTokenizer

from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task
from lmkernel.tasks.chat import encode_conversation


@pytest.fixture(scope="module")
def tok(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


MESSAGES = [{"role": "user", "content": "hello how are you"}, {"role": "assistant", "content": "I am fine"},
            {"role": "user", "content": "translate"}, {"role": "assistant", "content": "ein Hund"}]


def test_labels_cover_exactly_the_assistant_turns_and_their_end_token(tok):
    f = encode_conversation(tok, MESSAGES, 512)
    ids, labels = f["input_ids"], f["labels"]
    assert len(ids) == len(labels)
    # expected: tokenize the pieces of the ChatML text separately and mark the assistant contents + <|im_end|>
    parts = [("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", False)]
    for m in MESSAGES:
        parts.append((f"<|im_start|>{m['role']}\n", False))
        parts.append((m["content"] + "<|im_end|>", m["role"] == "assistant"))
        parts.append(("\n", False))
    expected_ids, expected_labels = [], []
    for text, learnt in parts:
        piece = tok(text, add_special_tokens=False)["input_ids"]
        expected_ids += piece
        expected_labels += piece if learnt else [-100] * len(piece)
    assert ids == expected_ids
    assert labels == expected_labels
    learnt = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assert learnt == "I am fine<|im_end|>ein Hund<|im_end|>"


def test_long_conversation_is_cut_after_the_last_whole_assistant_turn(tok):
    full = encode_conversation(tok, MESSAGES, 512)
    last_learnt = max(i for i, lab in enumerate(full["labels"]) if lab != -100)
    f = encode_conversation(tok, MESSAGES, last_learnt)  # the final <|im_end|> no longer fits
    assert len(f["input_ids"]) < len(full["input_ids"])
    assert tok.decode([i for i, lab in zip(f["input_ids"], f["labels"]) if lab != -100]) == "I am fine<|im_end|>"
    assert f["input_ids"] == full["input_ids"][:len(f["input_ids"])]
    assert encode_conversation(tok, MESSAGES, 5) is None  # not even the first turn fits: dropped


def test_encode_drops_and_counts_too_long(tok, tmp_path, capsys):
    task = get_task("chat")
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": MESSAGES}, {"prompt": "hi", "response": "hallo"}])
    ds = task.read(path, DataSpec(train=path), None)
    short = encode_conversation(tok, ds.examples[1].fields["messages"], 512)
    feats = task.encode(ds.examples, tok, [], len(short["input_ids"]))
    assert len(feats) == 1 and task.dropped == 1
    assert "1 of 2 conversation(s) dropped" in capsys.readouterr().out


def test_system_prompt_option_is_added(tok, tmp_path):
    task = get_task("chat", {"system_prompt": "Be brief."})
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "hi", "response": "hallo"}])
    f = task.encode(task.read(path, DataSpec(train=path), None).examples, tok, [], 128)[0]
    assert "<|im_start|>system\nBe brief.<|im_end|>" in tok.decode(f["input_ids"])


@pytest.mark.parametrize("row, reason", [
    ('{"messages": [{"role": "user", "content": "hi"}', "invalid JSON"),
    ({"question": "hi", "answer": "ho"}, "needs 'messages' or 'prompt' and 'response'"),
    ({"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "ho"}]}, "role 'human'"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}, "empty"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"},
                   {"role": "assistant", "content": "ho"}]}, "system message may only come first"),
    ({"messages": "hello"}, "non-empty list"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "ho"}]}, "'role' and 'content'"),
])
def test_bad_rows_name_file_line_and_reason(tmp_path, row, reason):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "response": "b"}, row])
    task = get_task("chat")
    with pytest.raises(LmkError) as e:
        task.read(path, DataSpec(train=path), None)
    assert reason in e.value.what
    assert e.value.where == f"{path} line 2"
    ds = task.read(path, DataSpec(train=path, on_bad_rows="skip"), None)
    assert len(ds.examples) == 1 and ds.bad[0].line == 2


def test_loss_is_token_weighted():
    task = get_task("chat")
    m = task.metrics({"nll": [10.0, 2.0], "tokens": [10, 1]}, [])
    assert m["loss"] == pytest.approx(12 / 11)
    assert m["perplexity"] == pytest.approx(2.718281828 ** (12 / 11), rel=1e-6)


def test_sparse_logits_give_the_same_loss_as_full(tiny_llama, tok):
    import torch

    task = get_task("chat")
    model = task.build_model(tiny_llama, [])
    feats = [encode_conversation(tok, MESSAGES, 512), encode_conversation(tok, MESSAGES[:2], 512)]
    assert task.keep_logits_only_where_learnt
    sparse = task.collate(feats, tok.pad_token_id)
    task.keep_logits_only_where_learnt = False
    dense = task.collate(feats, tok.pad_token_id)
    with torch.no_grad():
        a, b = model(**sparse), model(**dense)
    assert a.logits.shape[0] == int((dense["labels"][:, 1:] != -100).sum())
    assert float(a.loss) == pytest.approx(float(b.loss), rel=1e-5)
