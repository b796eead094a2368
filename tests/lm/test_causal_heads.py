"""Classification and NER on causal-LM backbones, with tiny Llama / Qwen2 / Gemma 3 models built in-process:
the pad token and last-token pooling on both padding sides, LoRA by default, and run -> load -> serve ->
int8 compress on the result."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch

import lmkernel
from lmkernel.artifact import load
from lmkernel.errors import LmkError
from lmkernel.models.decoder_heads import ensure_pad_token, is_decoder_backbone
from lmkernel.tasks import get_task
from tests.clikit import cli

LABELS = ["negative", "positive"]
TEXTS = ["the film", "the hotel was awful and the service was poor, the room was bad", "房间太差", "good"]
POS, NEG, NOUNS = ["great", "good", "lovely"], ["awful", "bad", "boring"], ["film", "hotel", "room", "book"]


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pos = rng.random() < 0.5
        rows.append((f"the {rng.choice(NOUNS)} was {rng.choice(POS if pos else NEG)}", LABELS[pos]))
    return rows


def write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])


def write_conll(path: Path, n: int, seed: int) -> None:
    """Sentences "the <noun> was <adj>" with the noun tagged PLACE (hotel, room) or WORK (film, book)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        noun = rng.choice(NOUNS)
        tag = "B-PLACE" if noun in ("hotel", "room") else "B-WORK"
        words = [("the", "O"), (noun, tag), ("was", "O"), (rng.choice(POS + NEG), "O")]
        lines += [f"{w} {t}" for w, t in words] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def build_decoder(root: Path, arch: str, pad: bool) -> Path:
    """A 2-layer, hidden-64 decoder of ``arch`` with a byte-level BPE tokenizer (``pad``: with a pad token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([t for t, _ in make_rows(100)] + TEXTS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  **({"pad_token": "<|endoftext|>"} if pad else {}))
    tok.save_pretrained(root)
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=256, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    if arch == "llama":
        config = LlamaConfig(num_key_value_heads=2, **common)
    elif arch == "qwen2":
        config = Qwen2Config(num_key_value_heads=2, **common)
    else:
        config = Gemma3TextConfig(num_key_value_heads=1, head_dim=16, sliding_window=8,
                                  layer_types=["sliding_attention", "full_attention"], **common)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict[str, Path]:
    """llama without a pad token (SmolLM2/Llama style), qwen2 and gemma3 with one."""
    root = tmp_path_factory.mktemp("decoders")
    return {"llama": build_decoder(root / "llama", "llama", pad=False),
            "qwen2": build_decoder(root / "qwen2", "qwen2", pad=True),
            "gemma3": build_decoder(root / "gemma3", "gemma3", pad=True)}


# ---------------------------------------------------------------------------------------------- spec defaults

def _spec(tmp_path: Path, model: str, task: str, extra: str = "") -> Path:
    write_csv(tmp_path / "train.csv", make_rows(40))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {{type: {task}}}\ndata: {{train: {tmp_path / 'train.csv'}}}\nmodel: {{name: {model}}}\n"
                    + extra, encoding="utf-8")
    return spec


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_decoder_backbones_default_to_lora_encoders_to_full(tmp_path, decoders, tiny_bert, task):
    from lmkernel.spec import load_spec

    assert load_spec(_spec(tmp_path, str(decoders["gemma3"]), task)).tuning.method == "lora"
    assert load_spec(_spec(tmp_path, "gemma3", task)).tuning.method == "lora"  # the alias: no conversion needed
    assert load_spec(_spec(tmp_path, "smollm2", task)).tuning.method == "lora"
    assert load_spec(_spec(tmp_path, str(tiny_bert), task)).tuning.method == "full"
    explicit = load_spec(_spec(tmp_path, str(decoders["llama"]), task, "tuning: {method: full}\n"))
    assert explicit.tuning.method == "full" and explicit.train.lr == pytest.approx(1e-4)


def test_is_decoder_backbone_reads_configs_without_loading(decoders, tiny_bert, tmp_path):
    assert is_decoder_backbone(decoders["qwen2"]) and is_decoder_backbone("gemma3")
    assert not is_decoder_backbone(tiny_bert) and not is_decoder_backbone("minilm")
    assert not is_decoder_backbone(tmp_path / "missing")  # the spec's own checks report it
    (tmp_path / "run" / "model").mkdir(parents=True)  # a run directory: its model/ folder
    (tmp_path / "run" / "model" / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert is_decoder_backbone(tmp_path / "run")


# ---------------------------------------------------------------------------------------------- padding

class _Tok:
    def __init__(self, eos=None, unk=None):
        self.pad_token, self.eos_token, self.unk_token = None, eos, unk
        self.ids = {"</s>": 2, "<unk>": 3}

    @property
    def pad_token_id(self):
        return self.ids.get(self.pad_token)


def test_a_tokenizer_without_pad_pads_with_eos_else_unk_else_refuses():
    assert ensure_pad_token(_Tok(eos="</s>", unk="<unk>")) == 2
    assert ensure_pad_token(_Tok(unk="<unk>")) == 3
    with pytest.raises(LmkError, match="no pad, end-of-text or unknown token"):
        ensure_pad_token(_Tok())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_a_text_scores_the_same_alone_and_batched_on_either_padding_side(decoders, arch):
    """The pooled token is each text's last real one, whatever else is in the batch and wherever the pads go."""
    from lmkernel.models.resolve import load_tokenizer

    task = get_task("classification")
    model = task.build_model(decoders[arch], LABELS).eval()
    tokenizer = load_tokenizer(decoders[arch])
    task.encode([], tokenizer, LABELS, 64)  # gives a pad-less tokenizer its pad token, as a run does
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    alone = torch.tensor([[r["probabilities"][lab] for lab in LABELS]
                          for t in TEXTS for r in task.predict(model, tokenizer, [t], LABELS, max_length=64,
                                                               batch_size=8)])
    batched = task.predict(model, tokenizer, TEXTS, LABELS, max_length=64, batch_size=8)
    assert torch.allclose(alone, torch.tensor([[r["probabilities"][lab] for lab in LABELS] for r in batched]),
                          atol=1e-5)
    for side in ("left", "right"):  # plain transformers with the saved tokenizer, padding on either side
        tokenizer.padding_side = side
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(model(**enc).logits, -1)
        assert torch.allclose(alone, probs, atol=1e-5), side


# ---------------------------------------------------------------------------------------------- run -> serve

@pytest.fixture(scope="module")
def cls_run(decoders, tmp_path_factory) -> Path:
    """A classification run with the default tuning on the pad-less tiny Llama."""
    root = tmp_path_factory.mktemp("cls-run")
    write_csv(root / "train.csv", make_rows(96, seed=1))
    write_csv(root / "dev.csv", make_rows(24, seed=2))
    (root / "spec.yaml").write_text(f"""task: {{type: classification}}
data: {{train: train.csv, validation: dev.csv}}
model: {{name: {decoders['llama']}}}
train: {{epochs: 1, batch_size: 16, log_every: 2, precision: fp32}}
output: {{dir: runs/cls}}
""", encoding="utf-8")
    cli("run", str(root / "spec.yaml"), "-q")
    return root / "runs" / "cls"


def test_classification_run_trains_lora_and_loads_predicts_serves(cls_run):
    from fastapi.testclient import TestClient

    from lmkernel.serve.app import create_app
    from lmkernel.serve.routes import load_predictor
    from lmkernel.serve.settings import ServeSettings

    card = json.loads((cls_run / "model" / "lmkernel.json").read_text())
    assert card["tuning"] == "lora" and card["weights"] == "adapter"
    assert card["trainable_params"] < card["total_params"] / 4  # adapters and the score head only
    model = lmkernel.load(cls_run)
    assert model.tokenizer.pad_token == "<|im_end|>"  # the pad token chosen in training is saved
    want = [r["probabilities"] for r in model.predict(TEXTS)]
    assert [r["probabilities"] for r in model.predict(TEXTS[1])] == [want[1]]

    predictor = load_predictor(cls_run)
    with TestClient(create_app(ServeSettings(), task="classification", load=lambda: predictor)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            __import__("time").sleep(0.05)
        r = client.post("/v1/classify", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    for got, exp in zip(r.json()["results"], want):
        assert got["label"] == max(exp, key=exp.get)
        assert got["probabilities"] == pytest.approx(exp, abs=1e-4)


def test_classification_run_compresses_to_int8(cls_run, tmp_path):
    cli("compress", str(cls_run), "--method", "int8", "--out", str(tmp_path / "q"), "-q",
        "--max-examples", "10", "--latency-samples", "2")
    fp32, int8 = load(cls_run, backend="exact"), load(tmp_path / "q", backend="exact")
    assert int8.card["weights"] == "int8"
    for a, b in zip(fp32.predict(TEXTS), int8.predict(TEXTS)):
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=0.05)


@pytest.fixture(scope="module")
def ner_run(decoders, tmp_path_factory) -> Path:
    """An NER run with the default tuning on the tiny Gemma 3 (transformers has no token head for it)."""
    root = tmp_path_factory.mktemp("ner-run")
    write_conll(root / "train.conll", 64, seed=1)
    write_conll(root / "dev.conll", 16, seed=2)
    (root / "spec.yaml").write_text(f"""task: {{type: ner}}
data: {{train: train.conll, validation: dev.conll}}
model: {{name: {decoders['gemma3']}}}
train: {{epochs: 1, batch_size: 16, log_every: 2, precision: fp32}}
output: {{dir: runs/ner}}
""", encoding="utf-8")
    cli("run", str(root / "spec.yaml"), "-q")
    return root / "runs" / "ner"


def test_ner_on_gemma3_runs_loads_serves_and_compresses(ner_run, tmp_path):
    from fastapi.testclient import TestClient

    from lmkernel.serve.app import create_app
    from lmkernel.serve.routes import load_predictor
    from lmkernel.serve.settings import ServeSettings

    card = json.loads((ner_run / "model" / "lmkernel.json").read_text())
    assert card["tuning"] == "lora" and card["trainable_params"] < card["total_params"] / 4
    model = lmkernel.load(ner_run)
    assert type(model.model).__name__ == "Gemma3TextForTokenClassification"
    texts = ["the hotel was great", "the film was boring and the room was bad"]
    want = model.predict(texts)
    assert [w["text"] for w in want] == texts and all(isinstance(w["entities"], list) for w in want)
    predictor = load_predictor(ner_run)
    with TestClient(create_app(ServeSettings(), task="ner", load=lambda: predictor)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            __import__("time").sleep(0.05)
        r = client.post("/v1/entities", json={"texts": texts})
    assert r.status_code == 200, r.text
    spans = [[(e["type"], e["start"], e["end"]) for e in res["entities"]] for res in r.json()["results"]]
    assert spans == [[(e["type"], e["start"], e["end"]) for e in w["entities"]] for w in want]

    cli("compress", str(ner_run), "--method", "int8", "--out", str(tmp_path / "q"), "-q",
        "--max-examples", "10", "--latency-samples", "2")
    int8 = load(tmp_path / "q", backend="exact")
    assert type(int8.model).__name__ == "Gemma3TextForTokenClassification"
    assert [r["text"] for r in int8.predict(texts)] == texts


# ---------------------------------------------------------------------------------------------- NER words

def test_ner_words_encode_as_running_text_and_tag_their_last_sub_token(decoders, tiny_bert):
    """A decoder's tokenizer marks word starts with a leading space: words get it back (ids as in running text),
    and the tag sits on the last sub-token of each word, the first that has seen all of it."""
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks.base import Example
    from lmkernel.tasks.ner import marks_word_starts
    from lmkernel.tasks.ner_text import spaced_words

    assert spaced_words(["the", "hotel", "房", "间", "was", "很"]) == ["the", " hotel", "房", "间", "was", "很"]
    tokenizer = load_tokenizer(decoders["qwen2"])
    assert marks_word_starts(tokenizer) and not marks_word_starts(load_tokenizer(tiny_bert))
    words = ["the", "hotel", "was", "wonderfully", "boring"]
    tags = ["O", "B-PLACE", "O", "O", "O"]
    [feature] = get_task("ner").encode([Example(" ".join(words), tags, "f", 1, {"tokens": words})], tokenizer,
                                       ["O", "B-PLACE", "I-PLACE"], 64)
    assert feature["input_ids"] == tokenizer(" ".join(words))["input_ids"]
    enc = tokenizer(spaced_words(words), is_split_into_words=True)
    last = {w: pos for pos, w in enumerate(enc.word_ids()) if w is not None}
    assert [i for i, lab in enumerate(feature["labels"]) if lab != -100] == sorted(last.values())
    assert feature["labels"][last[1]] == 1  # B-PLACE on "hotel"'s last piece
