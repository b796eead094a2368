"""The run spec: YAML in, validated pydantic models out.

Pydantic owns every default and every cross-field check, so no other module repeats a default or
reads raw YAML. Errors are rewritten for people: the YAML key path, the line in the file, and the
closest valid key for typos ("train.epoch: unknown key; did you mean train.epochs?").
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from . import specyaml
from .adversarialspec import AdversarialSpec, unsupported_options
from .augment.options import AugmentOptions
from .continual.options import ContinualSpec
from .errors import LmkError, SpecErrors, brief
from .models.decoder_heads import is_decoder_backbone
from .specmodel import SEED_MAX, SpecModel, SpecPath
from .tasks import task_info, task_names
from .trust.guardspec import GuardSpec
from .tuning import get_method, method_names, methods, refusal


def _one_of(value: str, names: list[str], what: str) -> str:
    """Accept a registered name; otherwise suggest the closest one (registries are the source of truth)."""
    if value not in names:
        close = difflib.get_close_matches(value, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {what} {brief(value)}{hint} (known: {', '.join(names)})")
    return value


class _Section(SpecModel):
    """A spec section: strict types, finite floats, no unknown keys (``SpecModel``)."""


def _task_spec() -> Any:
    """``task:``: the union of every registered task's options, told apart by ``type`` (a task's options
    are its own: setting another task's option is an error, so a typo'd type cannot silently ignore them)."""
    options = tuple(task_info(name).options for name in task_names())
    return Annotated[Union[options], Field(discriminator="type")]  # noqa: UP007 (a runtime tuple of types)


TaskSpec = _task_spec()
DEFAULT_TASK = "classification"


class SplitSpec(_Section):
    validation: float | None = Field(
        None, gt=0, lt=1, description="Fraction of train held out for validation when data.validation is not given."
    )
    test: float | None = Field(
        None, gt=0, lt=1, description="Fraction of train held out for test when data.test is not given."
    )


class DataSpec(_Section):
    train: SpecPath = Field(description="Training file (.csv, .tsv, .jsonl).")
    validation: SpecPath | None = Field(None, description="Validation file; or use data.split.validation.")
    test: SpecPath | None = Field(None, description="Test file; or use data.split.test.")
    format: Literal["auto", "csv", "tsv", "jsonl", "conll"] = Field(
        "auto", description="File format; auto picks it from the file extension."
    )
    text_column: str = Field("text", description="Column (or JSON key) holding the input text.")
    label_column: str = Field("label", description="Column (or JSON key) holding the label (string or int).")
    split: SplitSpec = Field(default_factory=SplitSpec, description="Deterministic hold-out ratios (seeded).")
    on_bad_rows: Literal["error", "skip"] = Field(
        "error", description="error: stop at the first bad row; skip: drop bad rows and count them in the report."
    )
    max_length: int = Field(128, gt=0, le=8192, description="Longest input in tokens; longer texts are truncated. "
                            "pretrain: the block size (texts are packed into blocks of exactly this many tokens).")
    document_boundary: Literal["auto", "line", "blank_line", "file"] = Field(
        "auto", description="pretrain: what one document of a text file is (documents are separated by EOS/[SEP]): "
        "line, blank_line (a paragraph: lines up to a blank line), file; auto: blank_line for a file with "
        "paragraphs (a blank line between text near its start), else line. A .jsonl row is always one document.")
    augment: AugmentOptions | None = Field(None, description="classification: add rows made by EDA operations "
                                           "(and back-translation), kept only if validation improves "
                                           "(docs/augment.md).")


class ModelSpec(_Section):
    name: str | None = Field("minilm", description="Model alias (minilm, smollm2, gemma3), auto (the installed "
                             "alias that reads the training data's language and suits the task, chosen from a "
                             "sample of data.train), or path to a local Hugging Face checkpoint dir (pretrain: the "
                             "backbone to continue pretraining; not used with model.arch).")
    chosen_because: str | None = Field(None, description="Set by model.name: auto (why that model), for the log and "
                                       "the report; not for writing by hand.")
    # pretraining from scratch (task: pretrain): an architecture, a size preset and optional overrides
    arch: Literal["encoder", "decoder"] | None = Field(
        None, description="pretrain from scratch: encoder (BERT, masked LM) or decoder (Llama, causal LM).")
    preset: Literal["tiny", "small", "base"] = Field(
        "tiny", description="pretrain: size preset (tiny 2x128, small 8x256, base 12x768 layers x hidden).")
    hidden_size: int | None = Field(None, gt=0, description="pretrain: override the preset's hidden size.")
    num_layers: int | None = Field(None, gt=0, description="pretrain: override the preset's layer count.")
    num_heads: int | None = Field(None, gt=0, description="pretrain: override the attention head count.")
    num_kv_heads: int | None = Field(None, gt=0, description="pretrain decoder: key/value heads (grouped-query "
                                     "attention; default = num_heads).")
    intermediate_size: int | None = Field(None, gt=0, description="pretrain: override the MLP width.")
    max_position_embeddings: int | None = Field(None, gt=0, description="pretrain: longest sequence the model "
                                                "accepts (default: max(512, data.max_length)).")

    @field_validator("name")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        if v is not None and "\x00" in v:
            raise ValueError("a model name or path cannot contain a NUL character")
        return v


class _TuningBase(_Section):
    method: str | None = Field(None, description="The tuning method: " + ", ".join(method_names()) + " (default: "
                               "the task's: lora for chat, translation and summarization, and for classification "
                               "and ner on a causal-LM backbone; else full).")
    merge: bool = Field(False, description="Adapter methods that can merge (lora, adalora, ia3): also save merged "
                        "full weights loadable by plain transformers.")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """tuning.train_embeddings moved to tuning.full.train_embeddings; older specs and resumed runs still load."""
        if isinstance(data, dict) and "train_embeddings" in data:
            data = dict(data)
            full = dict(data.get("full") or {})
            full.setdefault("train_embeddings", data.pop("train_embeddings"))
            data["full"] = full
        return data

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        return v if v is None else _one_of(v, method_names(), "tuning method")

    def options(self, method: str | None = None) -> Any:
        """The options model of ``method`` (default: the chosen one)."""
        return getattr(self, method or self.method)


def _tuning_spec() -> type[_Section]:
    """``tuning:``: the method's name plus one section per registered method (``tuning.lora.r``)."""
    sections = {name: (m.options, Field(default_factory=m.options, description=f"{name}: {m.summary}."))
                for name, m in methods().items()}
    return create_model("TuningSpec", __base__=_TuningBase, __doc__="The tuning method and every method's "
                        "options (only the chosen method's are read).", **sections)


TuningSpec = _tuning_spec()


class TrainSpec(_Section):
    epochs: int = Field(3, gt=0, description="Passes over the training data (not set: chosen by the "
                        "small-data rule where train.auto applies, docs/smalldata.md).")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(32, gt=0, description="Examples per step per process (not set: chosen by the small-data "
                            "rule where train.auto applies).")
    eval_batch_size: int = Field(64, gt=0, description="Examples per evaluation batch.")
    lr: float | None = Field(
        None, gt=0,
        description="Peak learning rate; default depends on tuning.method ("
        + ", ".join(f"{n} {m.default_lr:g}" for n, m in methods().items()) + "), raised for runs of few steps "
        "by the small-data rule where train.auto applies.",
    )
    auto: bool = Field(True, description="classification and ner: choose the train.batch_size, train.epochs and "
                       "train.lr the spec leaves unset from the training data's size (docs/smalldata.md); the "
                       "run's spec.yaml records the values chosen. false: the fixed defaults.")
    class_weights: Literal["none", "balanced"] | dict[str, float] = Field(
        "none", description="classification: weight the cross-entropy per label; balanced: n / (labels x count "
        "of the label), as scikit-learn; or a mapping label: weight (unnamed labels weigh 1).")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Fraction of steps with linear warmup.")
    grad_clip: float | None = Field(1.0, gt=0, description="Max gradient norm (null = no clipping).")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the hardware runs it fast (GPU, AVX512-BF16/AMX CPU), else fp32."
    )
    group_by_length: bool = Field(True, description="Batch texts of similar length together (less padding).")
    eval_every: int | None = Field(None, gt=0, description="Evaluate every N steps (default: every epoch).")
    checkpoint_every: int | None = Field(
        None, gt=0, description="Save a resumable checkpoint every N steps (default: at each evaluation)."
    )
    metric: str | None = Field(None, description="Validation metric for the best checkpoint and early stopping "
                               "(default: the task's: accuracy, f1 for ner, loss for generative tasks).")
    patience: int | None = Field(None, gt=0, description="Stop after N evaluations without improvement.")
    keep_optimizer: bool = Field(False, description="Keep the last resumable checkpoint after the run ends.")
    log_every: int = Field(10, gt=0, description="Record the training loss every N steps.")
    threads: int | None = Field(None, gt=0, le=4096, description="CPU threads for torch (default: all cores).")
    adversarial: AdversarialSpec = Field(default_factory=AdversarialSpec, description="Embedding-space "
                                         "adversarial training (classification, ner): none, fgm, pgd, freelb, "
                                         "or a section with method, epsilon, alpha, steps, warmup_steps.")
    rdrop: float | None = Field(None, gt=0, description="R-Drop weight: two dropout forwards per batch, this times "
                                "their symmetric KL added to the loss (classification, ner; null = off).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy "
                                   "(classification, ner).")
    robustness: bool = Field(False, description="classification: report accuracy on perturbed copies of the "
                             "validation set (typos, synonyms, Chinese variants).")


class OutputSpec(_Section):
    dir: SpecPath | None = Field(None, description="Run directory (default: runs/<spec name> in the current "
                                 "directory).")


class TokenizerSpec(_Section):
    """How ``lmkernel pretrain`` trains a tokenizer when the model brings none (model.arch), or extends
    the backbone's (tokenizer.extend)."""

    vocab_size: int = Field(8000, ge=100, le=1_000_000, description="pretrain: vocabulary size of the trained "
                            "tokenizer (WordPiece for encoders, byte-level BPE for decoders).")
    min_frequency: int = Field(2, ge=1, description="pretrain: a merge/word needs this many occurrences.")
    special_tokens: list[str] | None = Field(None, description="pretrain: extra special tokens added to the "
                                             "vocabulary (the architecture's own are always present).")
    lowercase: bool = Field(False, description="pretrain encoder: lowercase text before WordPiece.")
    max_texts: int | None = Field(None, gt=0, description="pretrain: train the tokenizer on at most this many "
                                  "texts from the start of the corpus (default: all, streamed).")
    extend: bool = Field(False, description="pretrain with model.name (a WordPiece encoder): add the corpus's "
                         "characters its vocabulary maps to [UNK], fold full-width forms, grow the embeddings, "
                         "then continue MLM (vocabulary adaptation, e.g. an English encoder for Chinese).")
    extend_max: int = Field(20000, ge=1, le=1_000_000, description="pretrain, tokenizer.extend: add at most this "
                            "many pieces (the most frequent; each needs tokenizer.min_frequency occurrences).")


class Spec(_Section):
    seed: int = Field(42, ge=0, le=SEED_MAX, description="Seeds Python, NumPy, torch and the data order "
                      "(0 to 2**32-1, NumPy's range).")
    task: TaskSpec = Field(default_factory=lambda: task_info(DEFAULT_TASK).options(),
                           description="What the model learns (task.type: " + ", ".join(task_names())
                           + ") and that task's options.")
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    guard: GuardSpec | None = Field(None, description="Guards that serve, predict and generate apply to this run's "
                                    "inputs and outputs by default (PII, blocklists, offensive content, ood and "
                                    "low-confidence flags; docs/trust.md).")
    continual: ContinualSpec | None = Field(None, description="Continual learning (classification): keep a replay "
                                            "buffer, Fisher and held-out rows for `--continue-from`, and how a "
                                            "continued run avoids forgetting (docs/continual.md).")

    @model_validator(mode="before")
    @classmethod
    def _default_task_type(cls, data: Any) -> Any:
        """``task:`` without ``type`` (or no ``task:``) means classification."""
        if isinstance(data, dict) and isinstance(data.get("task"), dict) and "type" not in data["task"]:
            data = {**data, "task": {"type": DEFAULT_TASK, **data["task"]}}
        return data

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Spec:
        info = task_info(self.task.type)
        if self.model.name == "auto" and self.model.arch is None:
            from .models.choose import choose_backbone, sample_texts

            choice = choose_backbone(self.task.type, sample_texts(self) if self.task.type != "pretrain" else [])
            self.model.name, self.model.chosen_because = choice.name, choice.reason
        if self.tuning.method is None:
            self.tuning.method = info.default_tuning(self.model.arch is None and is_decoder_backbone(self.model.name))
        if self.train.metric is None:
            self.train.metric = info.metric
        elif self.train.metric not in info.metrics:
            raise ValueError(f"train.metric {self.train.metric!r} is not computed by the {self.task.type} task "
                             f"(use one of {', '.join(info.metrics)})")
        method = get_method(self.tuning.method)
        refused = refusal(method.name, self.task.type)
        if refused is not None:
            raise ValueError(f"{refused[0]} ({refused[1]})")
        if self.tuning.merge and not method.mergeable:
            raise ValueError(f"tuning.merge is true, but {method.name} cannot merge into the weights "
                             "(set tuning.merge: false)")
        if self.train.lr is None:
            self.train.lr = method.lr(self.tuning.options())
            self.train.model_fields_set.discard("lr")  # still the method's default: the small-data rule may raise it
        self._check_model_source()
        if self.train.class_weights != "none" and self.task.type != "classification":
            raise ValueError(f"train.class_weights weighs the labels of classification; task {self.task.type!r} "
                             "has none (remove train.class_weights)")
        if self.data.validation is not None and self.data.split.validation is not None:
            raise ValueError("give data.validation or data.split.validation, not both")
        if self.data.test is not None and self.data.split.test is not None:
            raise ValueError("give data.test or data.split.test, not both")
        held_out = (self.data.split.validation or 0) + (self.data.split.test or 0)
        if held_out >= 1:
            raise ValueError(f"data.split ratios add up to {held_out}; they must leave some training data")
        if (problem := unsupported_options(self.task.type, self.train)) is not None:
            raise ValueError(problem)
        if method.hooks.check_spec is not None:  # an LmkError naming the key passes through pydantic as it is
            method.hooks.check_spec(self, None)
        return self

    def _check_model_source(self) -> None:
        """model.arch (pretrain from scratch) replaces model.name; both or neither is an error."""
        m = self.model
        if m.arch is None:
            if m.name is None:
                raise ValueError("model.name is empty: give a model alias or a checkpoint path (or, for task "
                                 "pretrain, model.arch: encoder | decoder)")
            return
        if self.task.type != "pretrain":
            raise ValueError(f"model.arch builds an untrained model; task {self.task.type!r} needs a trained one "
                             "(set model.name, or use task.type: pretrain)")
        if "name" in m.model_fields_set and m.name is not None:
            raise ValueError("give model.name (continue pretraining it) or model.arch (train from scratch), not both")
        if m.name is not None:
            m.name = None
        want = "mlm" if m.arch == "encoder" else "clm"
        if self.task.objective != want:
            raise ValueError(f"model.arch {m.arch} trains with objective {want}, not {self.task.objective} "
                             f"(set task.objective: {want})")

    def to_yaml(self) -> str:
        tree = self.model_dump(mode="json")
        t = self.tuning  # the chosen method's options only: the others are never read
        tree["tuning"] = {"method": t.method, "merge": t.merge, t.method: t.options().model_dump(mode="json")}
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------------------------
# Loading and friendly errors


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each YAML key path to its 1-based line, so errors can point into the file."""
    try:
        root = specyaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value) if isinstance(key, yaml.ScalarNode) else "?",)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)

    walk(root, ())
    return lines


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """Valid field names of the spec section at ``path`` (for did-you-mean hints)."""
    model: Any = Spec
    for part in path:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return []
    return list(model.model_fields) if model is not None else []


_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "finite_number": "a finite number",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "dict_type": "a mapping",
    "path_type": "a file path",
}


def _where(loc: tuple[str, ...], source: str, lines: dict[tuple[str, ...], int]) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return f"{source} line {lines[loc[:n]]}"
    return source


def _friendly(err: dict, source: str, lines: dict[tuple[str, ...], int]) -> LmkError:
    loc = tuple(str(p) for p in err["loc"])
    kind = err["type"]
    task = None  # errors inside task: carry the task's name after "task" (the union's tag): drop it
    if len(loc) >= 2 and loc[0] == "task" and loc[1] in task_names():
        task, loc = loc[1], (loc[0],) + loc[2:]
    dotted = ".".join(loc) or "(top level)"
    where = _where(loc, source, lines)
    if kind == "union_tag_invalid" and loc == ("task",):
        tag = str((err.get("ctx") or {}).get("tag"))
        close = difflib.get_close_matches(tag, task_names(), n=1)
        return LmkError(f"task.type: unknown task {tag!r}", where=_where(("task", "type"), source, lines),
                        fix=(f"did you mean {close[0]!r}? " if close else "") + "known: " + ", ".join(task_names()))
    if kind == "extra_forbidden" and task is not None and len(loc) == 2:
        valid = [f for f in task_info(task).options.model_fields if f != "type"]
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        return LmkError(f"{dotted}: not an option of task {task!r}", where=where,
                        fix=f"did you mean task.{close[0]}?" if close else
                        f"its options: {', '.join(valid) or 'none'} (lmkernel fields task)")
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        parent = ".".join(loc[:-1])
        if close:
            fix = f"did you mean {parent + '.' if parent else ''}{close[0]}?"
        else:
            fix = f"valid keys here: {', '.join(valid)}"
        return LmkError(f"{dotted}: unknown key", where=where, fix=fix)
    if kind == "missing":
        return LmkError(f"{dotted}: required key is missing", where=where, fix=f"add {dotted} to the spec")
    if kind in _TYPE_WORDS:
        got = err.get("input")
        return LmkError(f"{dotted}: expected {_TYPE_WORDS[kind]}, got {brief(got)} ({type(got).__name__})",
                        where=where, fix=_type_fix(dotted, _TYPE_WORDS[kind], got))
    msg = err["msg"].removeprefix("Value error, ")
    return LmkError(f"{dotted}: {msg[:300]}", where=where)


def _type_fix(dotted: str, want: str, got: Any) -> str:
    """How to write the value: values are taken as written, so say what the likely intent spells as."""
    if want == "an integer" and isinstance(got, float) and got.is_integer():
        return f"write {dotted}: {int(got)} (a whole number, without the decimal point)"
    if want in ("an integer", "a number") and isinstance(got, str):
        try:
            number = float(got)
        except ValueError:
            number = None
        if number is not None and number == number and abs(number) != float("inf"):
            return "write the number without quotes" + (f" ({dotted}: {got.strip()})" if len(got) < 30 else "")
    if want in ("an integer", "a number") and isinstance(got, bool):
        return f"set {dotted} to {want}; true and false are not numbers"
    if want == "a finite number":
        return f"set {dotted} to a finite number (.inf, .nan and literals beyond about 1.8e308 are not)"
    if want == "a string" and (got is None or isinstance(got, (int, float, bool))):
        return f"quote the value: {dotted}: \"...\""
    return f"set {dotted} to {want}"


def _set_dotted(tree: dict, dotted: str, raw: str, base: Path) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise LmkError(f"--set {dotted}={raw}: empty key part", where="--set", fix="use --set section.key=value")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise LmkError(f"--set {dotted}: {part} is not a section", where="--set")
        node = child
    try:
        value = specyaml.load(raw) if raw != "" else None
    except specyaml.SpecYAMLError as e:
        raise LmkError(f"--set {dotted}: the value is {e.problem}", where="--set", fix="give a plain value") from None
    except yaml.YAMLError:
        value = raw
    if _is_path_key(tuple(parts)) and isinstance(value, str):
        value = _resolve_path(value, base)
    node[parts[-1]] = value


_PATH_KEYS = {("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir")}


def _is_path_key(path: tuple[str, ...]) -> bool:
    return path in _PATH_KEYS


def _resolve_path(value: str, base: Path) -> str:
    if "\x00" in value:
        return value  # refused by the path field's own check, with its key
    from .data.files import expand_path  # an unknown ~user: an LmkError, not a traceback

    try:
        p = expand_path(value)
        return str(p if p.is_absolute() else (base / p).resolve())
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name too long
        raise LmkError(f"path {brief(value)} cannot be used: {e}", where=str(base),
                       fix="write a plain file or folder path") from None


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "/" in name or "\\" in name


def resolve_relative(tree: dict, base: Path) -> None:
    """Relative paths written in a spec file are relative to that file, not to the cwd."""
    for section, key in _PATH_KEYS:
        sec = tree.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            sec[key] = _resolve_path(sec[key], base)
    model = tree.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and _looks_like_path(model["name"]):
        model["name"] = _resolve_path(model["name"], base)


def parse_spec(tree: Any, source: str = "spec", text: str = "") -> Spec:
    """Validate a plain dict into a Spec, reporting every problem at once."""
    if not isinstance(tree, dict):
        raise LmkError(
            f"{source}: the spec must be a YAML mapping, got {type(tree).__name__}",
            where=source,
            fix="start from examples/sentiment.yaml",
        )
    try:
        return Spec.model_validate(tree)
    except ValidationError as e:
        lines = _key_lines(text)
        errors = [_friendly(err, source, lines) for err in e.errors(include_url=False)]
        if len(errors) == 1:
            raise errors[0] from None
        raise SpecErrors(errors, source) from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read a YAML spec, apply ``--set key=value`` overrides, resolve paths and validate."""
    path = Path(path)
    if path.is_dir() and (path / "spec.yaml").exists():
        path = path / "spec.yaml"
    if not path.exists():
        raise LmkError(f"spec file not found: {path}", where=str(path), fix="check the path (see examples/*.yaml)")
    text = _read_text(path)
    try:
        tree = specyaml.load(text)
    except specyaml.SpecYAMLError as e:
        raise LmkError(f"spec refused: {e.problem}", where=_yaml_where(path, e),
                       fix="a spec is a few nested sections of plain values: write them out") from None
    except yaml.YAMLError as e:
        raise LmkError(f"spec is not valid YAML: {str(getattr(e, 'problem', None) or e)[:300]}",
                       where=_yaml_where(path, e), fix="fix the YAML syntax (indentation, colons, quotes)") from None
    tree = {} if tree is None else tree
    if isinstance(tree, dict):
        resolve_relative(tree, path.parent.resolve())
        for item in overrides or []:
            if "=" not in item:
                raise LmkError(f"--set {item!r}: expected key=value", where="--set", fix="e.g. --set train.epochs=1")
            key, raw = item.split("=", 1)
            _set_dotted(tree, key.strip(), raw, Path.cwd())
        tree.setdefault("output", {})
        if isinstance(tree["output"], dict) and tree["output"].get("dir") is None:
            tree["output"]["dir"] = str((Path.cwd() / "runs" / path.stem).resolve())
    return parse_spec(tree, source=str(path), text=text)


def _read_text(path: Path) -> str:
    """The spec file's text, read only up to the size a spec can have (the path may be a device or pipe)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(specyaml.MAX_BYTES + 1)
    except OSError as e:
        raise LmkError(f"cannot read the spec {path}: {e.strerror or e}", where=str(path),
                       fix="pass a readable YAML file (or a run directory holding spec.yaml)") from None
    if len(raw) > specyaml.MAX_BYTES:
        raise LmkError(f"spec file is over {specyaml.MAX_BYTES} bytes; a spec is a few KB", where=str(path),
                       fix="pass the YAML spec, not a data file (data files go in data.train)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LmkError(f"spec is not UTF-8 text: {e}", where=str(path), fix="save the spec as UTF-8") from None


def _yaml_where(path: Path, e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"{path} line {mark.line + 1}" if mark else str(path)


def save_spec(spec: Spec, path: Path) -> None:
    from .fsutil import atomic_write_text

    atomic_write_text(path, spec.to_yaml())


def describe_fields(model: type[BaseModel] = Spec, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key path, default, description) for every spec field: the source of the docs table."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, key + "."))
            continue
        if model is Spec and name == "task":
            rows.extend(_describe_task_fields())
            continue
        optional = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if optional:  # an optional section (guard): the section itself, then its keys
            rows.append((key, "None", field.description or ""))
            rows.extend(describe_fields(optional[0], key + "."))
            continue
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append((key, default, field.description or ""))
    return rows


def _describe_task_fields() -> list[tuple[str, str, str]]:
    """``task.type`` and each task's options, once per key, naming the tasks that read it."""
    rows = [("task.type", repr(DEFAULT_TASK), "What the model learns: " + ", ".join(task_names()) + ".")]
    seen: dict[str, list[str]] = {}
    first: dict[str, tuple[str, str]] = {}
    for name in task_names():
        for key, field in task_info(name).options.model_fields.items():
            if key == "type":
                continue
            seen.setdefault(key, []).append(name)
            first.setdefault(key, (repr(field.get_default(call_default_factory=True)), field.description or ""))
    for key, tasks in seen.items():
        default, desc = first[key]
        rows.append((f"task.{key}", default, f"{', '.join(tasks)}: {desc}"))
    return rows
