"""Explanations: which words of a text pushed the model toward its answer, and how faithful that is.

One shape for every task, printed by ``lmkernel explain --json``, returned by ``POST /v1/explain`` and
by :func:`explain` (``lmkernel.load(run)`` in, dicts out)::

    {"text", "task", "label", "score", "method", "words": [{"word", "start", "end", "score"}],
     "comprehensiveness", "sufficiency", "comprehensiveness_random", "sufficiency_random"}

- classification: ``label`` is the predicted (or asked) label, ``score`` its probability;
- ner: ``entities``, each with its ``type``, span, ``words`` and faithfulness, explains that entity's tag
  (the top-level ``words`` is empty, ``label`` null);
- generation (causal LMs: chat, translation, summarization, pretrain): ``label`` is the generated text
  (greedy, at most ``max_new_tokens`` tokens) or the asked one, ``tokens`` holds the prompt words'
  scores per output token, and ``words`` their mean.

The engine (``attribution.py``) scores words with layer integrated gradients or occlusion; this module
builds the targets each task explains.
"""

from __future__ import annotations

from typing import Any

from ..errors import LmkError
from .attribution import Runner, faithfulness, ig_scores, occlusion_scores, supports_ig, word_rows
from .explain_words import Encoded, encode_words

METHODS = ("auto", "ig", "occlusion")
DEFAULT_STEPS = 4  # Gauss-Legendre points: the path integral is smooth, a few points are enough
FAITH_KEYS = ("comprehensiveness", "sufficiency", "comprehensiveness_random", "sufficiency_random")
GENERATION_TASKS = ("chat", "translation", "summarization", "pretrain", "causal_lm")


def explain(handle: Any, texts: str | list[str], label: str | None = None, **options: Any) -> list[dict[str, Any]]:
    """Explain texts with a loaded run (``lmkernel.load(run)``); ``label`` explains that label instead of
    the predicted one (generation: that continuation). Options as :func:`explain_texts`.

    Raises:
        LmkError: an empty text, a label the model does not have, or a task explanations do not cover.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    generative = _is_generative(handle.model, handle.card.get("task"))
    if label is not None and not generative and label not in handle.labels:
        raise LmkError(f"label {label!r} is not one of this model's labels", where=str(handle.path),
                       fix=f"pass one of: {', '.join(handle.labels)}")
    options.setdefault("max_length", handle.card.get("max_length", 512))
    if generative:
        options.setdefault("prompt_style", handle.prompt_style)
    return explain_texts(handle._generator() if generative else handle.model, handle.tokenizer, handle.task, texts,
                         labels=label, label_names=handle.labels or None, **options)


def explain_texts(model: Any, tokenizer: Any, task: Any, texts: list[str], labels: str | list[str | None] | None = None,
                  *, label_names: list[str] | None = None, method: str = "auto", n_steps: int = DEFAULT_STEPS,
                  precision: str = "fp32", max_length: int = 512, fraction: float = 0.2, draws: int = 3,
                  max_new_tokens: int = 8, prompt_style: Any = None, seed: int = 0,
                  faithful: bool = True) -> list[dict[str, Any]]:
    """One explanation per text (the module docstring's shape), for the evaluation report and the CLI.

    ``task``: the task object or its name; ``labels``: the label to explain per text (None: the predicted
    one), or one for all; ``label_names``: default the model config's ``id2label``; ``precision``: "bf16"
    runs the model under bf16 autocast; ``faithful=False`` skips the faithfulness passes (fields None).

    Raises:
        LmkError: an empty text, an unknown method or label, or a task explanations do not cover.
    """
    name = getattr(task, "name", task)
    if method not in METHODS:
        raise LmkError(f"unknown explanation method {method!r}", where="--method", fix=f"use one of {METHODS}")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise LmkError(f"text {i + 1} is empty: there are no words to explain", where=f"text {i + 1}",
                           fix="pass a text with at least one word")
    per_text = labels if isinstance(labels, list) else [labels] * len(texts)
    generative = _is_generative(model, name)
    chosen = _method(model, method, generative)
    common = dict(method=chosen, n_steps=n_steps, fraction=fraction if faithful else 0.0, draws=draws, seed=seed)
    if generative:
        return [_generation(model, tokenizer, t, lab, prompt_style, precision, max_length, max_new_tokens, common)
                for t, lab in zip(texts, per_text)]
    names = label_names or _config_labels(model)
    for lab in per_text:
        if lab is not None and lab not in names and name != "ner":
            raise LmkError(f"label {lab!r} is not one of this model's labels", where="--label",
                           fix=f"pass one of: {', '.join(names)}")
    if name == "classification":
        return [_classification(model, tokenizer, t, lab, names, precision, max_length, common)
                for t, lab in zip(texts, per_text)]
    if name == "ner":
        return [_ner(model, tokenizer, t, lab, names, precision, max_length, common, task)
                for t, lab in zip(texts, per_text)]
    raise LmkError(f"explanations cover classification, ner and generation, not task {name!r}", where="the run's task",
                   fix="explain a classification, ner or causal-LM (chat, translation, summarization) run")


def _is_generative(model: Any, task: Any) -> bool:
    name = getattr(task, "name", task)
    return name in GENERATION_TASKS or (name is None and type(model).__name__.endswith("ForCausalLM"))


def _method(model: Any, method: str, generative: bool) -> str:
    if method == "auto":
        return "ig" if supports_ig(model) and not generative else "occlusion"
    if method == "ig" and (generative or not supports_ig(model)):
        why = "per output token" if generative else "for this model (it has no differentiable embedding layer)"
        raise LmkError(f"integrated gradients are not available {why}", where="--method ig",
                       fix="use --method occlusion (or auto)")
    return method


def _config_labels(model: Any) -> list[str]:
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return [str(id2label[i]) for i in sorted(id2label, key=int)]


def _pad_id(model: Any, tokenizer: Any) -> int:
    from ..models.decoder_heads import batch_pad_id

    return batch_pad_id(model, tokenizer)


def _scores(runner: Runner, enc: Encoded, target, method: str, n_steps: int) -> list[float]:
    if method == "ig":
        return ig_scores(runner, enc, target, n_steps)
    return occlusion_scores(runner, enc, target).tolist()


def _explained(runner: Runner, enc: Encoded, target, c: dict[str, Any], full: float | None = None) -> dict[str, Any]:
    scores = _scores(runner, enc, target, c["method"], c["n_steps"])
    if not c["fraction"]:
        return {"method": c["method"], "words": word_rows(enc, scores), **_rounded(dict.fromkeys(FAITH_KEYS))}
    faith = faithfulness(runner, enc, target, scores, fraction=c["fraction"], draws=c["draws"], seed=c["seed"],
                         full=full)
    return {"method": c["method"], "words": word_rows(enc, scores), **_rounded(faith)}


def _rounded(faith: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(float(v), 6)) for k, v in faith.items()}


def _classification(model, tokenizer, text, label, names, precision, max_length, c) -> dict[str, Any]:
    import torch

    runner = Runner(model, _pad_id(model, tokenizer), precision)
    enc = encode_words(tokenizer, text, max_length)
    probs = runner.score([enc.ids], lambda logits, _: torch.softmax(logits, -1))[0]
    index = names.index(label) if label is not None else int(probs.argmax())

    def target(logits, _lengths, log_odds=False):
        return _log_odds(logits, [index]) if log_odds else torch.softmax(logits, -1)[:, index]

    return {"text": text, "task": "classification", "label": names[index], "score": round(float(probs[index]), 6),
            **_explained(runner, enc, target, c, full=float(probs[index]))}


def _ner(model, tokenizer, text, label, names, precision, max_length, c, task) -> dict[str, Any]:
    """Per entity the task predicts (of type ``label`` when given): the words behind its tags' probability."""
    import torch

    if not hasattr(task, "predict"):
        from ..tasks import get_task

        task = get_task("ner")
    found = task.predict(model, tokenizer, [text], names, max_length=max_length, batch_size=1)[0]["entities"]
    runner = Runner(model, _pad_id(model, tokenizer), precision, replace=True)
    enc = encode_words(tokenizer, text, max_length)
    entities = []
    for ent in found:
        if label is not None and ent["type"] != label:
            continue
        positions = torch.tensor([i for i, w in enumerate(enc.word_of)
                                  if w >= 0 and enc.words[w][0] < ent["end"] and enc.words[w][1] > ent["start"]])
        wanted = torch.tensor([j for j, n in enumerate(names) if n != "O" and n.split("-", 1)[-1] == ent["type"]])
        if not len(positions) or not len(wanted):
            continue

        def target(logits, _lengths, log_odds=False, positions=positions, wanted=wanted):
            rows = logits[:, positions]
            if log_odds:
                return _log_odds(rows, wanted.tolist()).mean(-1)
            return torch.softmax(rows, -1)[:, :, wanted].sum(-1).mean(-1)

        entities.append({**ent, "score": round(float(ent["score"]), 6), **_explained(runner, enc, target, c)})
    return {"text": text, "task": "ner", "label": None, "score": None, "method": c["method"], "words": [],
            "entities": entities, "comprehensiveness": None, "sufficiency": None,
            "comprehensiveness_random": None, "sufficiency_random": None}


def _generation(model, tokenizer, text, label, style, precision, max_length, max_new_tokens, c) -> dict[str, Any]:
    """Per output token, occlusion over the prompt's words; faithfulness on the tokens' mean probability."""
    from ..generation import generate, prompt_text

    full, templated = prompt_text(tokenizer, text, style=style)
    shift = max(full.rfind(text), 0)
    enc = encode_words(tokenizer, text, max_length, full=full, shift=shift, add_special_tokens=not templated)
    if label is not None:
        out_ids = tokenizer(label, add_special_tokens=False)["input_ids"][:max_new_tokens]
    else:
        out_ids = generate(model, tokenizer, text, style=style, max_new_tokens=max_new_tokens)[0]["token_ids"]
    if not out_ids:
        raise LmkError("the model generated nothing for this prompt, so there is nothing to explain",
                       where=text[:60], fix="pass --label with the continuation to explain")
    enc = Encoded(enc.text, enc.words, enc.ids + list(out_ids), enc.word_of + [-2] * len(out_ids), enc.shift)
    runner = Runner(model, _pad_id(model, tokenizer), precision)
    target = _next_tokens(out_ids)
    full_p = runner.score([enc.ids], target)[0]
    per_token = occlusion_scores(runner, enc, target, full_p)  # [words, n]
    mean = per_token.mean(-1).tolist()
    faith = faithfulness(runner, enc, target, mean, fraction=c["fraction"], draws=c["draws"], seed=c["seed"])
    tokens = [{"token": tokenizer.decode([t]), "probability": round(float(full_p[j]), 6),
               "words": [round(float(s), 6) for s in per_token[:, j].tolist()]} for j, t in enumerate(out_ids)]
    return {"text": text, "task": "generation", "label": tokenizer.decode(out_ids, skip_special_tokens=True),
            "score": round(float(full_p.mean()), 6), "method": "occlusion", "words": word_rows(enc, mean),
            "tokens": tokens, **_rounded(faith)}


def _log_odds(logits, wanted: list[int]):
    """log(p / (1 - p)) of the ``wanted`` classes together, from the logits (no saturation in fp32)."""

    others = [j for j in range(logits.shape[-1]) if j not in wanted]
    if not others:
        return logits[..., wanted].logsumexp(-1)
    return logits[..., wanted].logsumexp(-1) - logits[..., others].logsumexp(-1)


def _next_tokens(out_ids: list[int]):
    """Target: the probability of each output token, read from the end of each (right-padded) row."""
    import torch

    wanted = torch.tensor(out_ids, dtype=torch.long)
    n = len(out_ids)

    def target(logits, lengths, log_odds=False):
        steps = torch.arange(n, device=logits.device)
        pos = (lengths.to(logits.device)[:, None] - n - 1 + steps[None]).clamp(min=0)  # [B, n]
        rows = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))  # [B, n, V]
        index = wanted.to(logits.device)[None, :, None].expand(len(rows), -1, 1)
        return torch.softmax(rows, -1).gather(-1, index)[..., 0]

    return target
