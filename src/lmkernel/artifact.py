"""The artifact directory: everything needed to use a trained model, from the folder alone.

``runs/<run>/model/`` holds weights (safetensors), tokenizer, and ``lmkernel.json`` (the card:
task, labels, base model, tuning). Full and freeze runs save a plain transformers checkpoint;
Adapter methods save through their tuning method's ``save`` hook (peft methods: a peft adapter, plus
merged weights when ``tuning.merge`` is true) and load through its ``load`` hook.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import LmkError
from .fsutil import atomic_replace_dir, atomic_write_json
from .models.quiet import quiet_libraries

CARD = "lmkernel.json"
FORMAT_VERSION = 1


def save_artifact(model_dir: Path, model, tokenizer, card: dict[str, Any], merge: bool = False,
                  trust: Any = None, extra: Callable[[Path], None] | None = None) -> None:
    """Write the model folder atomically (to ``model.tmp``, then renamed into place); ``trust``: the
    classifier's ``TrustProfile``, saved inside it (``trust/profile.py``); ``extra``: writes more files into
    the folder before the rename (continual learning's replay buffer and Fisher)."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save = _method_hook(card.get("tuning"), "save")
    with quiet_libraries():
        if save is not None:
            card["weights"] = save(model, tmp, merge)  # the tuning method writes its own weights
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            card["weights"] = "full"
        tokenizer.save_pretrained(str(tmp))
    _task_files(tmp, card)
    if trust is not None:
        from .trust.profile import save_profile

        save_profile(tmp, trust)
    if extra is not None:
        extra(tmp)
    card["format"] = FORMAT_VERSION
    atomic_write_json(tmp / CARD, card)
    atomic_replace_dir(tmp, model_dir)


def _task_files(directory: Path, card: dict[str, Any]) -> None:
    """Files the task adds beside the weights (its optional ``save_files(directory, card)`` hook: the
    embedding task's sentence-transformers modules)."""
    from .tasks import get_task, task_names

    if card.get("task") in task_names():
        hook = getattr(get_task(card["task"], card.get("task_options")), "save_files", None)
        if hook is not None:
            hook(directory, card)


def find_model_dir(path: str | Path) -> Path:
    """Accept a run directory or its ``model/`` folder."""
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / CARD).is_file():
            return candidate
    if not path.exists():
        raise LmkError(f"no such run or model directory: {path}", where=str(path),
                       fix="pass the run directory printed by `lmkernel run` (e.g. runs/<name>)")
    raise LmkError(f"{path} is not an lmkernel artifact (no {CARD} in it or in {path}/model)", where=str(path),
                   fix="pass a run directory created by `lmkernel run`; an unfinished run has no model yet "
                   "(continue it with `lmkernel run SPEC --resume`)")


def read_card(model_dir: Path) -> dict[str, Any]:
    """The artifact's card, checked: a damaged or hand-edited card is a message here, not a traceback
    (or a wrong prediction) later."""
    where = str(model_dir / CARD)
    try:
        card = json.loads((model_dir / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
        raise LmkError(f"model card {where} is unreadable: {e}", where=where,
                       fix="the artifact is damaged; re-run training or restore the folder") from e
    if not isinstance(card, dict):
        raise LmkError(f"model card {where} is not a JSON object", where=where, fix=_DAMAGED)
    for key in ("task", "labels", "weights"):
        if key not in card:
            raise LmkError(f"model card {where} lacks {key!r}", where=where,
                           fix="the artifact is damaged or from another tool; re-run training")
    _check_card(card, where)
    return card


_DAMAGED = "the artifact is damaged or was edited by hand; re-run training or restore the folder"


def _check_card(card: dict[str, Any], where: str) -> None:
    """The fields lmkernel reads, with the types and ranges it writes them with."""
    from pydantic import ValidationError

    from .errors import brief
    from .tasks import task_info, task_names

    def bad(what: str, fix: str = _DAMAGED) -> LmkError:
        return LmkError(f"model card {where}: {what}", where=where, fix=fix)

    task = card["task"]
    if not isinstance(task, str) or task not in task_names():
        raise bad(f"unknown task {brief(task)}", fix="install the lmkernel version (or plugin) that trained it; "
                  "known tasks: " + ", ".join(task_names()))
    labels = card["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise bad(f"labels must be a list of strings, got {brief(labels)}")
    if len(set(labels)) != len(labels):
        raise bad("labels has duplicates")
    if not isinstance(card["weights"], str):
        raise bad(f"weights must be a string, got {brief(card['weights'])}")
    length = card.get("max_length")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length <= 0):
        raise bad(f"max_length must be a positive integer, got {brief(length)}")
    for key in ("base_model", "tuning"):
        if card.get(key) is not None and not isinstance(card[key], str):
            raise bad(f"{key} must be a string, got {brief(card[key])}")
    for key in ("task_options", "tuning_options", "data"):
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise bad(f"{key} must be a JSON object, got {brief(card[key])}")
    options = task_info(task).options
    known = set(options.model_fields) - {"type"}
    try:  # as tasks.get_task reads them: options the task no longer has are ignored
        options(**{k: v for k, v in (card.get("task_options") or {}).items() if k in known})
    except ValidationError as e:
        raise bad(f"task_options: {_first_error(e)}") from None
    if any(not isinstance(v, str) for v in (card.get("data") or {}).values()):
        raise bad("data: column names must be strings")


def _first_error(e: Any) -> str:
    from .errors import brief

    err = e.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {brief(err.get('input'))})"


def _check_label_count(model: Any, card: dict[str, Any], model_dir: Path) -> None:
    """A classifier's head scores exactly the card's labels; another count predicts wrong names or fails."""
    heads = getattr(getattr(model, "config", None), "num_labels", None)
    if not isinstance(heads, int) or not (card["labels"] or type(model).__name__.endswith("Classification")):
        return
    if heads != len(card["labels"]):
        raise LmkError(f"model card {model_dir / CARD} names {len(card['labels'])} labels, but the model scores "
                       f"{heads}", where=str(model_dir / CARD), fix=_DAMAGED)


def load_model_weights(model_dir: Path, card: dict[str, Any], task):
    """The torch model of an artifact, with any adapter merged for fast inference."""
    import transformers

    from .models.resolve import load_pretrained, resolve_model_path

    if card["weights"] in ("full", "merged"):
        return load_pretrained(getattr(transformers, task.auto_model), model_dir)
    if card["weights"] != "adapter":  # int8, onnx, ...: the compression method that wrote it loads it
        from .compress import load_weights

        return load_weights(model_dir, card, task)
    load = _method_hook(card.get("tuning", "lora"), "load")
    if load is None:
        raise LmkError(f"{model_dir} holds an adapter of tuning method {card.get('tuning')!r}, which cannot load "
                       "adapters", where=str(model_dir / CARD), fix="the card is damaged; re-run training")
    base = task.build_model(resolve_model_path(card["base_model"]), card["labels"])
    return load(base, model_dir, card)


def _method_hook(name: str | None, hook: str):
    """A tuning method's save/load hook; an artifact from a method this install lacks is an error."""
    if name is None:
        return None
    from .tuning import get_method, method_names

    if name not in method_names():
        raise LmkError(f"the artifact was trained with tuning method {name!r}, which this lmkernel does not have",
                       where="lmkernel.json", fix="install the lmkernel version (or plugin) that trained it")
    return getattr(get_method(name).hooks, hook)


class Model:
    """A loaded artifact: ``lmkernel.load(run).predict(texts)``."""

    def __init__(self, model, tokenizer, task, card: dict[str, Any], path: Path):
        if type(model).__name__.endswith("ForCausalLM"):  # decoding multiplies by a few rows at a time
            from .models.layout import use_few_row_linears

            use_few_row_linears(model)
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.card = card
        self.path = path
        from .trust.profile import load_profile

        # flags for predictions (ood, low_confidence): None for runs without a profile
        self.trust = load_profile(path)

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    def predict(self, texts: str | dict | list[Any], batch_size: int = 64,
                tokenizer: Any = None) -> list[dict[str, Any]]:
        """The task's prediction for each text (classification: label, score, probabilities; qa: each item is
        ``{"question", "context"}`` and gets answer, score, start, end).

        ``tokenizer``: a copy of ``self.tokenizer`` to use instead, for callers that predict from several
        threads at once: a fast tokenizer's truncation setting is shared state, changed by calls that
        ask for another one (huggingface/tokenizers#537).
        """
        if isinstance(texts, (str, dict)):
            texts = [texts]
        texts = [t if isinstance(t, (str, dict, tuple)) else str(t) for t in texts]
        if not texts:
            return []
        tokenizer = self.tokenizer if tokenizer is None else tokenizer  # not `or`: a tokenizer has a __len__
        extra = {"trust": self.trust} if self.trust is not None else {}  # only classification runs have one
        return self.task.predict(self.model, tokenizer, texts, self.labels,
                                 max_length=self.card.get("max_length", 512), batch_size=batch_size, **extra)

    def explain(self, texts: str | list[str], **options: Any) -> list[dict[str, Any]]:
        """Word attributions per text (the same object as `lmkernel explain --json`); options as
        :func:`lmkernel.trust.explain.explain`."""
        from .trust.explain import explain

        return explain(self, texts, **options)

    def embed(self, texts: str | list[str], batch_size: int = 64, max_length: int | None = None):
        """Unit-length sentence vectors (a float32 numpy array, one row per text) from a task that makes
        them (the ``embedding`` task: its ``embed`` hook); others raise an error saying what to use.
        ``max_length``: tokens kept per text (default: the length the run was trained with)."""
        if not hasattr(self.task, "embed"):
            raise LmkError(f"the {self.card['task']} model in {self.path} does not make sentence embeddings",
                           where=str(self.path), fix="train a run with task.type: embedding, or embed with "
                           "lmkernel.knowledge.embedder.load_embedder('minilm')")
        if isinstance(texts, str):
            texts = [texts]
        return self.task.embed(self.model, self.tokenizer, [str(t) for t in texts],
                               max_length=max_length or self.card.get("max_length", 512), batch_size=batch_size)

    def _check_generative(self) -> None:
        if not hasattr(self.model, "generate") or not type(self.model).__name__.endswith("ForCausalLM"):
            raise LmkError(f"the {self.card['task']} model in {self.path} is a {type(self.model).__name__}, "
                           "which cannot generate text", where=str(self.path),
                           fix="generate with a causal LM: a chat/translation/summarization/pretrain (clm) run, "
                           "a model alias such as smollm2, or a local Hugging Face causal-LM folder")

    @property
    def prompt_style(self):
        """How prompts reach this model (its task's ``prompt_style``): the same for CLI, Python and server."""
        from .generation import PromptStyle

        style = getattr(self.task, "prompt_style", None)
        return style() if style else PromptStyle(system=self.card.get("task_options", {}).get("system_prompt"))

    def prompt_ids(self, prompt: str | None = None, messages=None, **kwargs: Any) -> list[int]:
        """The token ids ``generate`` feeds for this prompt (``generation.prompt_ids`` with this model's style)."""
        from .generation import prompt_ids

        return prompt_ids(self.tokenizer, prompt, messages, style=self.prompt_style, **kwargs)

    def generate(self, prompts, **params: Any) -> list[dict[str, Any]]:
        """Text for one prompt (a string or a list of {"role", "content"} messages) or a list of
        them, batched: ``[{"text", "tokens", "token_ids", "prompt_tokens", "finish_reason"}]``.
        Parameters: temperature (0 = greedy), top_p, top_k, max_new_tokens, repetition_penalty,
        stop (strings), seed, system (instead of the trained one), raw (no chat template), batch_size."""
        from .generation import generate

        self._check_generative()
        return generate(self._generator(), self.tokenizer, prompts, style=self.prompt_style, **params)

    def stream(self, prompt, **params: Any):
        """An iterator of text pieces as they are generated (same parameters as ``generate``); its
        ``result`` attribute holds the ``generate``-style dict once it is exhausted."""
        from .generation import TextStream

        self._check_generative()
        return TextStream(self._generator(), self.tokenizer, prompt, style=self.prompt_style, **params)

    def _generator(self):
        """The model ``generate`` runs on: prompt/prefix tuning's virtual tokens as a prefix cache."""
        if getattr(self, "_gen", None) is None:
            from .tuning import serving_model

            self._gen = serving_model(self.model)
        return self._gen

    def __repr__(self) -> str:
        return f"Model(task={self.card['task']!r}, labels={self.labels}, path='{self.path}')"


def load_generator(name: str | Path) -> Model:
    """A ``Model`` to generate with: an lmkernel run/artifact directory, a model alias
    (``smollm2``) or a local Hugging Face causal-LM folder."""
    import torch
    from transformers import AutoModelForCausalLM

    from .models.resolve import ALIASES, load_pretrained, load_tokenizer, resolve_model_path
    from .tasks import get_task

    path = Path(name)
    if str(name) not in ALIASES and ((path / CARD).is_file() or (path / "model" / CARD).is_file()):
        return load(path)
    model_path = resolve_model_path(str(name))
    model = load_pretrained(AutoModelForCausalLM, model_path, dtype=torch.float32)
    model.eval()
    card = {"task": "chat", "labels": [], "weights": "full", "base_model": str(name), "task_options": {}}
    return Model(model, load_tokenizer(model_path), get_task("chat"), card, model_path)


def load(path: str | Path, backend: str = "auto") -> Model:
    """Load a run directory (or its model folder) for prediction.

    ``backend="auto"`` loads the runtime variant ``lmkernel compare --select`` chose for this run
    (``compress/backend.py``: e.g. its ONNX int8 copy), if any; ``"exact"`` loads exactly ``path``."""
    from .models.resolve import load_tokenizer
    from .tasks import get_task

    model_dir = find_model_dir(path)
    if backend == "auto":
        from .compress.backend import resolve

        chosen = resolve(model_dir)
        if chosen != model_dir:
            logging.getLogger(__name__).info("loading %s: the backend `lmkernel compare --select` chose for %s",
                                             chosen, model_dir)
        model_dir = chosen
    card = read_card(model_dir)
    task = get_task(card["task"], card.get("task_options"))
    model = load_model_weights(model_dir, card, task)
    _check_label_count(model, card, model_dir)
    model.eval()
    return Model(model, load_tokenizer(model_dir), task, card, model_dir)
