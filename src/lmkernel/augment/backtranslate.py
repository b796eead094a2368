"""Back-translation: a paraphrase of each text, made by translating it into a pivot language and back.

The translator is any lmkernel causal LM (a chat/translation run, or a model alias such as gemma3), run
through lmkernel's own generation API with greedy decoding, so the same seed and model give the same rows.
Both directions use the translation task's default instruction, so a translation run trained on it reads
the prompts it was trained on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import LmkError
from .options import BackTranslation

INSTRUCTION = "Translate this {source_lang} sentence into {target_lang}:\n{source}"
WHERE = "data.augment.back_translation.model"


def check_model(ref: str) -> None:
    """Fail before any training when the translating model cannot be found."""
    from ..models.resolve import resolve_model_path

    try:
        resolve_model_path(ref)
    except LmkError as e:
        raise LmkError(f"the back-translation model {ref!r} was not found: {e.what}", where=WHERE,
                       fix="name an lmkernel run directory, a model alias (e.g. gemma3) or a local causal-LM "
                       "folder, or remove data.augment.back_translation") from None


def _translate(model, texts: list[str], source: str, target: str, opts: BackTranslation) -> list[str]:
    prompts = [[{"role": "user", "content": INSTRUCTION.format(source_lang=source, target_lang=target, source=t)}]
               for t in texts]
    outs = model.generate(prompts, temperature=0, max_new_tokens=opts.max_new_tokens, batch_size=opts.batch_size,
                          repetition_penalty=opts.repetition_penalty)
    return [next((line.strip() for line in o["text"].splitlines() if line.strip()), "") for o in outs]


def back_translate(examples: list[Any], opts: BackTranslation) -> list[Any]:
    """One back-translated row per example (the first ``max_rows``), labels kept; a paraphrase that is
    empty or equal to its original is dropped."""
    from ..artifact import load_generator

    check_model(opts.model)
    chosen = examples[:opts.max_rows] if opts.max_rows else examples
    if not chosen:
        return []
    model = load_generator(opts.model)
    pivot = _translate(model, [e.text for e in chosen], opts.source_language, opts.pivot_language, opts)
    back = _translate(model, pivot, opts.pivot_language, opts.source_language, opts)
    return [replace(e, text=t, fields={**e.fields, "augmented": "back_translation"})
            for e, t in zip(chosen, back) if t and t != e.text]
