"""Shared fixtures: a tiny random BERT built in-process, small data files, offline hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datakit import NEG_EN, NEG_ZH, NOUNS, POS_EN, POS_ZH, make_rows, write_csv  # noqa: F401  (re-exported)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with a small WordPiece vocab, saved as a local HF checkpoint."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-bert")
    words = set()
    for text, _ in make_rows(300) + [("great film 太差了 the a", "")]:
        words.update(text.lower().split())
        words.update(ch for ch in text)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab=str(root / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    write_csv(d / "train.csv", make_rows(160, seed=1))
    write_csv(d / "dev.csv", make_rows(40, seed=2))
    write_csv(d / "test.csv", make_rows(40, seed=3))
    return d


@pytest.fixture()
def spec_file(tmp_path, data_dir, tiny_bert) -> Path:
    """A complete spec on the tiny model; tests tweak it with --set."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"""task: {{type: classification}}
data: {{train: data/train.csv, validation: data/dev.csv, test: data/test.csv}}
model: {{name: {tiny_bert}}}
tuning: {{method: full}}
train: {{epochs: 3, batch_size: 16, lr: 3e-3, log_every: 2}}
output: {{dir: runs/tiny}}
""",
        encoding="utf-8",
    )
    return spec


CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LM_TEXT = [
    "the cat sat on the mat", "a dog runs in the park", "two people walk on the street",
    "ein Hund läuft im Park", "die Katze sitzt auf der Matte", "zwei Menschen gehen auf der Straße",
    "这家酒店很好", "服务太差了", "translate to German", "hello how are you", "I am fine thank you",
]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer, hidden-64 Llama with a byte-level BPE tokenizer and a ChatML template (like SmolLM2's),
    saved as a local HF causal-LM checkpoint. Byte-level, so any text (Chinese too) encodes without [UNK]."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(LM_TEXT * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    tok.save_pretrained(root)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(root)
    return root
