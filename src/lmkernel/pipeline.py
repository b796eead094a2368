"""run(spec): read -> encode -> train -> evaluate -> report -> save.

This is the one orchestration function behind ``lmkernel run`` / ``train``; each step is a call
into a stage package. It reads top to bottom; details live in the stages.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from .data.read import read_data, read_labelled
from .errors import LmkError
from .rundir import RunResult, cleanup, start_run
from .spec import Spec
from .tasks import get_task


def _summary(spec: Spec, run_dir: Path, model_path: Path, epochs: str) -> dict[str, Any]:
    chosen = f" (model.name: auto: {spec.model.chosen_because})" if spec.model.chosen_because else ""
    return {
        "task": spec.task.type, "model": f"{spec.model.name} (`{model_path}`){chosen}", "tuning": spec.tuning.method,
        "epochs": epochs, "batch size": spec.train.batch_size, "learning rate": spec.train.lr,
        "max length": spec.data.max_length, "seed": spec.seed, "train file": f"`{spec.data.train}`",
        "run dir": f"`{run_dir}`", "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


UNKNOWN_WARN = 0.05  # above this share of [UNK] tokens a model is mostly guessing


def unknown_token_share(features: list[dict], unk_id: int | None) -> float:
    """Share of input tokens the tokenizer mapped to its unknown token (e.g. Chinese for an English vocab)."""
    if unk_id is None:
        return 0.0
    total = sum(len(f["input_ids"]) for f in features)
    return sum(f["input_ids"].count(unk_id) for f in features) / max(total, 1)


def _analysis(task, split: str, examples: list, features: list[dict], kept: dict[str, list], labels: list[str]):
    """The split's error analysis (classification, NER) as a one-item list, its warnings printed; [] for others."""
    if task.name not in ("classification", "ner") or not kept.get("index"):
        return []
    from .evaluation.analysis import analyze

    analysis = analyze(task, split, examples, features, kept, labels)
    for w in analysis.warnings:
        print(f"warning: {split}: {w}")
    return [analysis]


def _explainer(task, model, tokenizer, labels: list[str], precision: str, max_length: int):
    """report.md's explanations of the most confident errors (classification, NER): why the model chose what
    it chose. An explanation that fails is logged and left out; it never fails the run."""
    if task.name not in ("classification", "ner"):
        return None
    from .trust.explain import explain_texts
    from .trust.explain_render import markdown

    def explain_fn(texts: list[str]) -> list[str | None]:
        try:
            rows = explain_texts(model, tokenizer, task, texts, label_names=labels, precision=precision,
                                 max_length=max_length)
        except Exception as e:  # noqa: BLE001 - an optional report section must not lose the trained model
            print(f"note: the errors were not explained ({type(e).__name__}: {e})")
            return [None] * len(texts)
        return [markdown([row]) for row in rows]

    return explain_fn


def _trust_profile(task, model, tokenizer, splits: dict, labels: list[str], spec: Spec):
    """A classifier's trust profile (low-confidence and out-of-distribution thresholds, drift reference),
    calibrated on the validation split; None for other tasks or without one."""
    if task.name != "classification" or not splits.get("validation") or not splits["validation"].examples:
        if task.name == "classification":
            print("note: no validation split, so the model gets no trust profile (ood / low-confidence flags); "
                  "set data.validation or data.split.validation")
        return None
    from .trust.calibrate import build_profile

    pairs = {k: [(e.text, e.label) for e in splits[k].examples] for k in ("train", "validation")}
    return build_profile(model, tokenizer, labels, pairs["train"], pairs["validation"], max_length=spec.data.max_length,
                         batch_size=spec.train.eval_batch_size, seed=spec.seed)


def _card(spec: Spec, task: str, labels: list[str], params: tuple[int, int], metrics: dict[str, dict]) -> dict:
    """The artifact's lmkernel.json: what loading, serving and inspecting the model need."""
    t = spec.tuning
    card = {"task": task, "task_options": spec.task.options(), "labels": labels,
            "base_model": spec.model.name, "tuning": t.method, "tuning_options": t.options().model_dump(mode="json"),
            "max_length": spec.data.max_length, "trainable_params": params[0], "total_params": params[1],
            "metrics": {k: {m: v for m, v in d.items() if isinstance(v, float)} for k, d in metrics.items()},
            "data": {"text_column": spec.data.text_column, "label_column": spec.data.label_column}}
    if spec.guard is not None:  # serve/predict/generate apply it by default (trust/guardrun.py)
        card["guard"] = spec.guard.model_dump(mode="json")
    return card


def run(spec: Spec, resume: bool = False, final_eval: bool = True, progress: bool = True,
        continue_from: str | Path | None = None, trial: Any = None) -> RunResult:
    """Train and evaluate per the spec; write the artifact, metrics.json and report.md. ``continue_from``: a
    classification run whose model learns this spec's data and labels without forgetting its own (continual/).
    ``trial`` (a ``search.trialrun.TrialMode``): a search trial, which ends with metrics.json alone."""
    if spec.task.type == "pretrain":  # streams its corpus and may build its model: its own pipeline
        from .pretrain import pretrain

        return pretrain(spec, resume=resume, progress=progress)
    from .tuning import get_method

    if (check := get_method(spec.tuning.method).hooks.check_spec) is not None:  # before any training
        check(spec, continue_from)
    if spec.data.augment is not None:  # trains without and with the new rows, keeps the better (augment/guard.py)
        import functools

        from .augment.guard import run_augmented

        run_fn = functools.partial(run, continue_from=continue_from) if continue_from is not None else run
        return run_augmented(spec, run_fn, resume=resume, final_eval=final_eval, progress=progress)
    from accelerate.utils import set_seed

    from .artifact import save_artifact
    from .continual import begin as begin_continual
    from .evaluation.report import ReportInput, write_report
    from .evaluation.robustness import robustness_section
    from .models.resolve import load_tokenizer, resolve_model_path
    from .training import epochs_done, evaluate, train
    from .training.robust import build_objective, objective_stats
    from .training.smalldata import prepare
    from .tuning import Tuning, count_parameters

    stage = begin_continual(spec, continue_from)  # None for an ordinary run; loads the old run before start_run
    accelerator, spec, run_dir = start_run(spec, resume)

    task = get_task(spec.task.type, spec.task)
    if spec.model.chosen_because and accelerator.is_main_process:
        print(f"model.name: auto chose {spec.model.name}: {spec.model.chosen_because}")
    splits, labels = read_data(task, spec)
    labels = stage.labels(labels) if stage else labels  # the old labels keep their indices
    small = prepare(spec, splits, labels, accelerator, run_dir)  # small-data rule, class weights
    model_path = resolve_model_path(spec.model.name)
    tokenizer = load_tokenizer(model_path)
    set_seed(spec.seed)
    model = stage.build_model(task, model_path, tokenizer, labels) if stage else task.build_model(model_path, labels)
    t = spec.tuning
    tuning = Tuning(t.method, t.options(), spec.task.type)
    model = tuning.apply(model)
    params = count_parameters(model)
    features = {name: task.encode(ds.examples, tokenizer, labels, spec.data.max_length) for name, ds in splits.items()}
    if not features["train"]:
        raise LmkError(f"none of the {len(splits['train'].examples)} training examples is left after encoding",
                       where=str(spec.data.train), fix="raise data.max_length (examples that do not fit are dropped)")
    if stage:  # the replay buffer joins train, the old tasks' validation rows join validation
        stage.extend_features(splits, features, task, tokenizer, labels, spec.data.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    unknown = unknown_token_share(features["train"], tokenizer.unk_token_id)
    if unknown > UNKNOWN_WARN and accelerator.is_main_process:
        print(f"warning: {unknown:.0%} of the training tokens are unknown ({tokenizer.unk_token}) to the "
              f"{spec.model.name} tokenizer, so the model cannot read much of this text; use a checkpoint "
              "whose vocabulary covers the language (model.name: path to a local multilingual/Chinese model)")

    if trial is not None:  # never resumed (a killed search trains it again): no checkpoints, not even the last
        spec.train.checkpoint_every = trial.NO_CHECKPOINTS
    start = time.perf_counter()
    objective = build_objective(spec.train, task, class_weights=small.class_weights)  # None: the task's own loss
    objective = stage.objective(objective) if stage else objective  # EWC's penalty: once a step, outside
    fit = tuning.hook("fit")  # a method with its own training (fewshot) runs it instead of the loop
    if fit is not None:
        result = fit(model, task, features["train"], features.get("validation"), labels, spec.train, spec.seed,
                     run_dir, accelerator, pad_id, resume=resume, progress=progress, tuning=tuning)
    else:
        result = train(model, task, features["train"], features.get("validation"), labels, spec.train, spec.seed,
                       run_dir, accelerator, pad_id, resume=resume, progress=progress,
                       tuning=tuning, objective=objective, probes=trial.probes if trial is not None else 0)
    if trial is not None:  # a search trial: its metrics, its model only if it may be the best (search/trialrun.py)
        from .search.trialrun import finish_trial

        out = finish_trial(trial, spec, run_dir, result, lambda val: save_artifact(
            run_dir / "model", accelerator.unwrap_model(model), tokenizer,
            _card(spec, task.name, labels, params, {"validation": val}), merge=t.merge))
        cleanup(run_dir, spec.train.keep_optimizer)
        return RunResult(run_dir, out)
    metrics: dict[str, dict[str, Any]] = {}
    analyses = []
    for name in ("validation", "test") if final_eval else ("validation",):
        if features.get(name):
            kept: dict[str, list] = {}
            metrics[name] = evaluate(model, task, features[name], labels, spec.train.eval_batch_size,
                                     accelerator, pad_id, progress, keep=kept)
            if accelerator.is_main_process:
                analyses += _analysis(task, name, splits[name].examples, features[name], kept, labels)
            generated = getattr(task, "generation_metrics", None)  # BLEU/ROUGE: slow, so final eval only
            if generated is not None and accelerator.is_main_process:
                metrics[name].update(generated(accelerator.unwrap_model(model), tokenizer, splits[name].examples,
                                               spec.train.eval_batch_size))
    wall = time.perf_counter() - start

    accelerator.wait_for_everyone()
    out: dict[str, Any] = {}
    if accelerator.is_main_process:
        card = _card(spec, task.name, labels, params, metrics)
        trust = _trust_profile(task, accelerator.unwrap_model(model), tokenizer, splits, labels, spec)
        done = stage.finish(accelerator.unwrap_model(model), task, tokenizer, splits, labels, features["train"],
                            lambda f: evaluate(model, task, f, labels, spec.train.eval_batch_size, accelerator,
                                               pad_id, False),
                            run_dir, spec.data.max_length, pad_id, final_eval) if stage else None
        card.update({"continual": done.entry} if done else {})
        save_artifact(run_dir / "model", accelerator.unwrap_model(model), tokenizer, card, merge=t.merge, trust=trust,
                      extra=done.write if done else None)
        training = {"optimizer steps": result.global_step, "epochs trained": round(result.epochs_trained, 3),
                    "precision": result.precision,
                    "processes": result.world_size, "train time (s)": round(result.train_seconds, 1),
                    "wall time incl. eval (s)": round(wall, 1),
                    "train samples/s": round(result.samples_per_second, 1),
                    "best step": result.best_step, f"best {spec.train.metric}": result.best_metric,
                    "stopped early": result.stopped_early, **objective_stats(objective)}
        summary = _summary(spec, run_dir, model_path, epochs_done(result, spec.train)) | small.summary
        summary["unknown tokens in train"] = f"{unknown:.1%}" + (" (the tokenizer cannot read much of this text)"
                                                                 if unknown > UNKNOWN_WARN else "")
        sections = getattr(task, "report_sections", None)
        robust = robustness_section(spec, task, model, tokenizer, splits, features, labels, metrics, accelerator,
                                    pad_id, progress)
        report = ReportInput(
            title=f"lmkernel run: {run_dir.name}", labels=labels, metrics=metrics,
            data_counts={k: len(v.examples) for k, v in splits.items()},
            skipped={k: v.bad for k, v in splits.items() if v.bad}, summary=summary,
            params=params, training=training, history=result.history,
            sections=(sections(splits["train"], labels) if sections else []) + ([done.section] if done else [])
            + robust, analyses=analyses)
        explain_fn = _explainer(task, accelerator.unwrap_model(model), tokenizer, labels, result.precision,
                                spec.data.max_length)
        out = write_report(run_dir, report, primary="validation" if "validation" in metrics else "test",
                           explain_fn=explain_fn)
        cleanup(run_dir, spec.train.keep_optimizer)
    accelerator.wait_for_everyone()
    return RunResult(run_dir, out)


def evaluate_run(path: Path, data: Path, out_dir: Path, *, text_column: str | None = None,
                 label_column: str | None = None, fmt: str = "auto", on_bad_rows: str = "error",
                 batch_size: int = 64, progress: bool = True, robustness: bool = False) -> dict[str, Any]:
    """Metrics of a saved model on new labelled data: metrics.json, report.md and plots in out_dir
    (``robustness``: plus accuracy on perturbed copies, evaluation/robustness.py)."""
    from .artifact import load
    from .device import make_accelerator
    from .evaluation.report import ReportInput, write_report
    from .evaluation.robustness import eval_robustness
    from .training import evaluate

    model = load(path, backend="exact")  # evaluate the run itself, not a faster recorded copy
    ds = read_labelled(model, Path(data), fmt=fmt, text_column=text_column, label_column=label_column,
                       on_bad_rows=on_bad_rows)
    if not ds.examples:
        raise LmkError(f"no usable rows in {data}", where=str(data), fix="check the file and its columns")
    features = model.task.encode(ds.examples, model.tokenizer, model.labels, model.card.get("max_length", 512))
    accelerator = make_accelerator("fp32")
    torch_model = accelerator.prepare(model.model)
    pad_id = model.tokenizer.pad_token_id or 0
    kept: dict[str, list] = {}
    metrics = evaluate(torch_model, model.task, features, model.labels, batch_size, accelerator, pad_id, progress,
                       keep=kept)
    generated = getattr(model.task, "generation_metrics", None)
    if generated is not None:
        metrics.update(generated(model.model, model.tokenizer, ds.examples, batch_size))
    sections = eval_robustness(model, torch_model, ds.examples, metrics, accelerator, batch_size) if robustness else []
    report = ReportInput(title=f"lmkernel eval: {Path(data).name}", labels=model.labels, metrics={"eval": metrics},
                         data_counts={"eval": len(ds.examples)}, skipped={"eval": ds.bad} if ds.bad else {},
                         summary={"model": f"`{model.path}`", "data": f"`{data}`", "task": model.card["task"]},
                         analyses=_analysis(model.task, "eval", ds.examples, features, kept, model.labels),
                         sections=sections)
    out_dir.mkdir(parents=True, exist_ok=True)
    explain_fn = _explainer(model.task, model.model, model.tokenizer, model.labels, "fp32",
                            model.card.get("max_length", 512))
    return write_report(out_dir, report, primary="eval", explain_fn=explain_fn)
