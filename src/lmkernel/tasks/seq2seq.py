"""Translation and summarization on a causal LM: (source, target) pairs become chat examples.

Pairs come from a TSV/CSV/JSONL file with source and target columns, or from two aligned text
files: ``data.train: data/train`` reads ``data/train.<source_lang>`` and ``data/train.<target_lang>``
line by line (the Multi30k layout). A prompt template turns the source into the user turn and the
target is the assistant turn, so training, loss masking and generation are the chat task's. The
final evaluation also generates greedily for the first ``eval_samples`` examples and scores them
with sacreBLEU (BLEU, chrF) or ROUGE.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..data.files import open_data, text_of, undecodable
from ..data.readers import BadRow, read_rows
from ..errors import LmkError
from ..tuning import serving_model
from .base import Dataset, Example, TaskInfo, TaskOptions
from .chat import GENERATION_SERVING, SYSTEM_PROMPT, ChatTask
from .classification import check_bad_rows

LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "cs": "Czech",
             "zh": "Chinese", "ja": "Japanese", "ru": "Russian", "pt": "Portuguese", "nl": "Dutch"}
PLACEHOLDERS = {"source", "source_lang", "target_lang"}


def check_template(template: str) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise LmkError(f"task.prompt_template is not a valid template: {e}", where="task.prompt_template",
                       fix="use {source}, {source_lang} and {target_lang}; write literal braces as {{ }}") from e
    unknown = names - PLACEHOLDERS
    if unknown or "source" not in names:
        raise LmkError(f"task.prompt_template uses {sorted(unknown) or 'no {source}'}",
                       where="task.prompt_template",
                       fix="the template must contain {source} and may use {source_lang} and {target_lang}")


def _lines(path: Path, bad: list[BadRow]) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    with open_data(path) as fh:
        for number, text in enumerate(text_of(fh), start=1):
            problem = undecodable(text)
            if problem:
                bad.append(BadRow(str(path), number, problem))
            out.append((number, None if problem else text.rstrip("\n")))
    return out


def read_aligned(src: Path, tgt: Path) -> tuple[list[tuple[int, str, str]], list[BadRow]]:
    """(line, source, target) from two files whose line i translate each other."""
    bad: list[BadRow] = []
    a, b = _lines(src, bad), _lines(tgt, bad)
    if len(a) != len(b):
        longer, n = (src, len(b)) if len(a) > len(b) else (tgt, len(a))
        raise LmkError(f"aligned files differ in length: {src.name} has {len(a)} lines, {tgt.name} has {len(b)}",
                       where=f"{longer}:{n + 1} (first line without a partner)",
                       fix="line i of one file must translate line i of the other; remove the extra lines")
    pairs = []
    for (line, s), (_, t) in zip(a, b):
        if s is None or t is None:
            continue
        if not s.strip() or not t.strip():
            empty = src if not s.strip() else tgt
            bad.append(BadRow(str(empty), line, "empty line (its partner in the other file is not)"
                              if (s.strip() or t.strip()) else "empty line in both files"))
            continue
        pairs.append((line, s.strip(), t.strip()))
    return pairs, bad


class Seq2SeqOptions(TaskOptions):
    system_prompt: str | None = SYSTEM_PROMPT
    source_column: str = Field("source", description="Column (or JSON key) of the source text.")
    target_column: str = Field("target", description="Column (or JSON key) of the target text.")
    prompt_template: str | None = Field(None, description="Instruction turning a source into a prompt; "
                                        "placeholders {source}, {source_lang}, {target_lang}.")
    max_new_tokens: int = Field(64, gt=0, description="Token limit when generating for evaluation.")
    eval_samples: int | None = Field(200, gt=0, description="Validation examples generated for BLEU/chrF/ROUGE "
                                     "(generation is slow; null = all).")


class TranslationOptions(Seq2SeqOptions):
    type: Literal["translation"] = "translation"
    source_lang: str = Field("en", description="Source language code (also the suffix of aligned text files, "
                             "e.g. train.en).")
    target_lang: str = Field("de", description="Target language code (suffix of the aligned file).")


class SummarizationOptions(Seq2SeqOptions):
    type: Literal["summarization"] = "summarization"


class Seq2SeqTask(ChatTask):
    """Shared by translation and summarization: only the default prompt and the metrics differ."""

    default_template: ClassVar[str] = "{source}"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.template = getattr(options, "prompt_template", None) or self.default_template
        check_template(self.template)

    def fill(self, source: str) -> str:
        o = self.options
        src = getattr(o, "source_lang", "en")
        tgt = getattr(o, "target_lang", "de")
        return self.template.format(source=source, source_lang=LANGUAGES.get(src, src),
                                    target_lang=LANGUAGES.get(tgt, tgt))

    def prompt_style(self):
        """A bare prompt is a source text: formatted as the training turns were (``task.prompt_template``)."""
        from ..generation import PromptStyle

        return PromptStyle(system=self.system_prompt, source=self.fill)

    def _aligned_paths(self, path: Path) -> tuple[Path, Path] | None:
        o = self.options
        langs = (getattr(o, "source_lang", None), getattr(o, "target_lang", None))
        if path.exists() or None in langs:
            return None
        pair = tuple(path.with_name(f"{path.name}.{lang}") for lang in langs)
        missing = [p for p in pair if not p.is_file()]
        if missing and len(missing) < 2:
            raise LmkError(f"aligned file {missing[0]} not found (its partner {pair[pair[0] in missing]} exists)",
                           where=str(missing[0]), fix="both files must exist: PREFIX.<source_lang> and "
                           "PREFIX.<target_lang>")
        return pair if not missing else None

    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        o = self.options
        pair = self._aligned_paths(Path(path))
        if pair is not None:
            rows, bad = read_aligned(*pair)
            where = str(pair[0])
        else:
            result = read_rows(path, [o.source_column, o.target_column], data.format)
            rows, bad, where = [], list(result.bad), str(path)
            for row in result.rows:
                s, t = row.fields.get(o.source_column), row.fields.get(o.target_column)
                if not isinstance(s, str) or not s.strip() or not isinstance(t, str) or not t.strip():
                    col = o.source_column if not isinstance(s, str) or not s.strip() else o.target_column
                    bad.append(BadRow(str(path), row.line, f"empty or non-text {col!r}"))
                    continue
                rows.append((row.line, s.strip(), t.strip()))
        examples = [Example(s, None, where, line, {"source": s, "target": t, "messages": [
            {"role": "user", "content": self.fill(s)}, {"role": "assistant", "content": t}]})
            for line, s, t in rows]
        bad.sort(key=lambda b: (b.file, b.line))
        check_bad_rows(bad, data.on_bad_rows, where)
        return Dataset(examples, bad)

    def score(self, hypotheses: list[str], references: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def generation_metrics(self, model, tokenizer, examples: list[Example], batch_size: int) -> dict[str, Any]:
        """Greedy outputs for the first ``eval_samples`` examples, scored against the targets."""
        from ..generation import generate

        n = self.options.eval_samples or len(examples)
        chosen = examples[:n]
        if not chosen:
            return {}
        prompts = [[m for m in self.conversation(e) if m["role"] != "assistant"] for e in chosen]
        merged = _merge_for_generation(model)
        was_training = model.training
        model.eval()
        try:  # prompt/prefix tuning: from its virtual tokens' cache (peft's generate drifts from the forward)
            outs = generate(serving_model(model), tokenizer, prompts, max_new_tokens=self.options.max_new_tokens,
                            batch_size=batch_size)
        finally:
            model.train(was_training)
            if merged:
                model.unmerge_adapter()
        hyps = [o["text"].strip() for o in outs]
        refs = [e.fields["target"] for e in chosen]
        result: dict[str, Any] = self.score(hyps, refs)
        result["generated"] = len(hyps)
        result["hit_token_limit"] = sum(o["finish_reason"] == "length" for o in outs)
        result["samples"] = [{"source": e.fields["source"], "reference": r, "output": h}
                             for e, r, h in list(zip(chosen, refs, hyps))[:5]]
        return result


class TranslationTask(Seq2SeqTask):
    name: ClassVar[str] = "translation"
    default_template: ClassVar[str] = "Translate this {source_lang} sentence into {target_lang}:\n{source}"

    def score(self, hypotheses: list[str], references: list[str]) -> dict[str, float]:
        from ..evaluation.textmetrics import bleu_chrf

        return bleu_chrf(hypotheses, references, getattr(self.options, "target_lang", None))


class SummarizationTask(Seq2SeqTask):
    name: ClassVar[str] = "summarization"
    default_template: ClassVar[str] = "Summarize this text in one or two sentences:\n{source}"

    def fill(self, source: str) -> str:
        return self.template.format(source=source, source_lang="", target_lang="")

    def score(self, hypotheses: list[str], references: list[str]) -> dict[str, float]:
        from ..evaluation.textmetrics import rouge

        return rouge(hypotheses, references)


TRANSLATION = TaskInfo("translation", TranslationTask, TranslationOptions, metrics=("loss", "perplexity"),
                       tuning="lora", serving=GENERATION_SERVING, final_metrics=("bleu", "chrf"))
SUMMARIZATION = TaskInfo("summarization", SummarizationTask, SummarizationOptions, metrics=("loss", "perplexity"),
                         tuning="lora", serving=GENERATION_SERVING,
                         final_metrics=("rouge1", "rouge2", "rougeL"))


def _merge_for_generation(model) -> bool:
    """A peft model mid-run generates on merged weights (faster); True when merged (unmerge after). Prompt and
    prefix tuning have nothing to merge: peft 0.22 has ``merge_adapter`` on every PeftModel and raises there."""
    config = getattr(model, "active_peft_config", None)
    if not hasattr(model, "merge_adapter") or getattr(config, "is_prompt_learning", False):
        return False
    model.merge_adapter()
    return True
