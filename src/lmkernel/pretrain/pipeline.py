"""pretrain(spec): corpus -> tokenizer -> model -> streamed training -> perplexity -> artifact.

The same spine as ``pipeline.run`` (Accelerate loop, checkpoints, --resume, report, artifact); what
differs is where data and model come from. The training corpus is never loaded: a ``BlockStream``
re-reads it every epoch. A trained tokenizer is saved in the run dir before training starts, so a
resumed run reuses it instead of training a new one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..spec import Spec
from .corpus import BlockStream, CorpusStats, Packing, boundary_used, holdout, iter_texts, resolve_files

TOKENIZER_DIR = "tokenizer"
EXTENSION_FILE = "lmkernel-extension.json"
EXTEND_SCAN = 200_000  # texts scanned for missing characters unless tokenizer.max_texts says otherwise


def _texts(spec: Spec, files: list[Path], held: bool | None):
    """A factory for fresh passes over documents (optionally one side of the seeded hold-out)."""
    d = spec.data
    ratio = d.split.validation

    def make(stats: CorpusStats):
        texts = iter_texts(files, d.text_column, d.on_bad_rows, stats, d.document_boundary)
        return texts if held is None or not ratio else holdout(texts, ratio, spec.seed, held)

    return make


def _arch_of(model) -> str:
    return "decoder" if getattr(model.config, "is_decoder", False) or "CausalLM" in type(model).__name__ else "encoder"


def _save_tokenizer(tok, run_dir: Path, extra: dict | None = None) -> None:
    """Publish the run's tokenizer folder atomically (a resumed run reuses it)."""
    import json
    import shutil

    saved, tmp = run_dir / TOKENIZER_DIR, run_dir / (TOKENIZER_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(str(tmp))
    if extra is not None:
        (tmp / EXTENSION_FILE).write_text(json.dumps(extra, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(saved, ignore_errors=True)  # a partial one from a crash mid-save
    tmp.replace(saved)


def _extended(spec: Spec, run_dir: Path, train_texts, is_main: bool, accelerator):
    """The backbone's tokenizer plus the corpus's missing characters (saved once; a resumed run reuses it)."""
    import json
    from dataclasses import asdict
    from itertools import islice

    from ..models.resolve import load_tokenizer, resolve_model_path
    from .vocab import extend_tokenizer

    saved = run_dir / TOKENIZER_DIR
    if not (saved / EXTENSION_FILE).exists():
        if is_main:
            t = spec.tokenizer
            scan = list(islice(train_texts(CorpusStats()), t.max_texts or EXTEND_SCAN))
            print(f"extending {spec.model.name}'s vocabulary with the characters of {len(scan)} training texts "
                  "it maps to [UNK]")
            tok, ext = extend_tokenizer(load_tokenizer(resolve_model_path(spec.model.name)), scan, t.min_frequency,
                                        t.extend_max)
            print(f"added {ext.added} pieces; [UNK] share {ext.unk_before:.1%} -> {ext.unk_after:.1%}")
            _save_tokenizer(tok, run_dir, asdict(ext))
        accelerator.wait_for_everyone()
    info = json.loads((saved / EXTENSION_FILE).read_text(encoding="utf-8"))
    return load_tokenizer(saved), "backbone, extended", info


def _tokenizer(spec: Spec, run_dir: Path, train_texts, is_main: bool, accelerator):
    """(tokenizer, where it came from, vocabulary extension or None): the backbone's, the backbone's
    extended with the corpus's characters, or a new one trained on the corpus; a resumed run reuses
    the one it made."""
    from itertools import islice

    from ..models.resolve import load_tokenizer, resolve_model_path
    from .tokenizer import train_tokenizer

    if spec.tokenizer.extend:
        if spec.model.arch is not None:
            raise LmkError("tokenizer.extend adapts a pretrained model's tokenizer, but model.arch builds a new model",
                           where="tokenizer.extend", fix="set model.name to the encoder to adapt (e.g. minilm), "
                           "or drop tokenizer.extend (a new model trains its own tokenizer)")
        return _extended(spec, run_dir, train_texts, is_main, accelerator)
    if spec.model.arch is None:
        return load_tokenizer(resolve_model_path(spec.model.name)), "backbone", None
    saved = run_dir / TOKENIZER_DIR
    if not (saved / "tokenizer.json").exists():
        if is_main:
            t = spec.tokenizer
            print(f"training a {'WordPiece' if spec.model.arch == 'encoder' else 'byte-level BPE'} tokenizer "
                  f"(vocab {t.vocab_size}) on {spec.data.train}")
            texts = train_texts(CorpusStats())
            tok = train_tokenizer(islice(texts, t.max_texts) if t.max_texts else texts, spec.model.arch,
                                  t.vocab_size, t.min_frequency, t.special_tokens, t.lowercase)
            _save_tokenizer(tok, run_dir)
        accelerator.wait_for_everyone()
    return load_tokenizer(saved), "trained", None


def _model(spec: Spec, tokenizer):
    from ..models.resolve import resolve_model_path
    from ..tasks import get_task
    from .models import build_model, dimensions

    if spec.model.arch is None:
        model = get_task("pretrain", spec.task).build_model(resolve_model_path(spec.model.name), [])
        want = "decoder" if spec.task.objective == "clm" else "encoder"
        if _arch_of(model) != want:
            raise LmkError(f"{spec.model.name} is not a {want} model for objective {spec.task.objective}",
                           where="model.name", fix="continue pretraining an encoder with mlm, a decoder with clm")
        if spec.tokenizer.extend:
            from .vocab import resize_embeddings

            resize_embeddings(model, len(tokenizer))
        return model
    m = spec.model
    dims = dimensions(m.preset, {"hidden_size": m.hidden_size, "num_layers": m.num_layers, "num_heads": m.num_heads,
                                 "intermediate_size": m.intermediate_size, "num_kv_heads": m.num_kv_heads})
    return build_model(m.arch, dims, tokenizer, m.max_position_embeddings or max(512, spec.data.max_length))


def _check_block(spec: Spec, model) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and spec.data.max_length > limit:
        raise LmkError(f"data.max_length {spec.data.max_length} (the block size) exceeds the model's "
                       f"{limit} positions", where="data.max_length", fix=f"use data.max_length <= {limit}")


def pretrain(spec: Spec, resume: bool = False, progress: bool = True):
    """Train per a ``task: pretrain`` spec; write the artifact, metrics.json and report.md."""
    from accelerate.utils import set_seed

    from ..rundir import RunResult, start_run
    from ..tasks import get_task
    from ..training import evaluate, train
    from ..tuning import count_parameters
    from .tokenizer import TextEncoder, separator_ids

    accelerator, spec, run_dir = start_run(spec, resume)

    d = spec.data
    train_files = resolve_files(d.train, "data.train")
    train_texts = _texts(spec, train_files, held=False)
    tokenizer, tok_source, extension = _tokenizer(spec, run_dir, train_texts, accelerator.is_main_process,
                                                  accelerator)
    task = get_task("pretrain", spec.task)
    task.bind(tokenizer)
    set_seed(spec.seed)
    model = _model(spec, tokenizer)
    _check_block(spec, model)
    params = count_parameters(model)
    arch = _arch_of(model)
    if accelerator.is_main_process:
        print(f"model: {type(model).__name__}, {params[1]:,} parameters ({params[0]:,} trainable); "
              f"vocabulary {len(tokenizer):,}; blocks of {d.max_length} tokens")

    whole = spec.task.objective == "mlm" and spec.task.whole_word_mask
    sep, prefix, suffix = separator_ids(tokenizer, arch)
    stream = BlockStream(train_texts, TextEncoder(tokenizer, whole), Packing(d.max_length, sep, prefix, suffix),
                         spec.train.batch_size, spec.seed, accelerator.num_processes, accelerator.process_index)
    val = _validation(spec, task, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    start = time.perf_counter()
    result = train(model, task, stream, val, [], spec.train, spec.seed, run_dir, accelerator, pad_id,
                   resume=resume, progress=progress)
    metrics: dict[str, dict[str, Any]] = {}
    if val:
        last = next((h for h in reversed(result.history) if "eval" in h), None)
        if last is not None and last["step"] == result.best_step == result.global_step:
            metrics["validation"] = last["eval"]  # the loop just evaluated these very weights
        else:
            metrics["validation"] = evaluate(model, task, val, [], spec.train.eval_batch_size, accelerator, pad_id,
                                             progress)
    wall = time.perf_counter() - start
    accelerator.wait_for_everyone()
    out: dict[str, Any] = {}
    if accelerator.is_main_process:
        out = _finish(spec, run_dir, accelerator.unwrap_model(model), tokenizer, tok_source, extension, task, stream,
                      val, metrics, result, params, wall)
    accelerator.wait_for_everyone()
    return RunResult(run_dir, out)


def _validation(spec: Spec, task, tokenizer) -> list[dict]:
    """Validation blocks (held in memory: validation text is small), fixed masks for mlm."""
    d = spec.data
    if d.validation is not None:
        make = _texts(spec, resolve_files(d.validation, "data.validation"), held=None)
    elif d.split.validation:
        make = _texts(spec, resolve_files(d.train, "data.train"), held=True)
    else:
        return []
    from ..tasks.base import Example

    examples = [Example(t, None, "validation", 0) for t in make(CorpusStats())]
    blocks = task.encode(examples, tokenizer, [], d.max_length)
    if not blocks:
        raise LmkError(f"the validation text makes no block of {d.max_length} tokens", where="data.validation",
                       fix="give more validation text or lower data.max_length")
    return blocks


def _finish(spec, run_dir, model, tokenizer, tok_source, extension, task, stream, val, metrics, result, params, wall):
    """Artifact + report (main process)."""
    import platform
    import shutil

    from ..artifact import save_artifact
    from ..evaluation.report import ReportInput, write_report
    from ..rundir import cleanup
    from ..training import epochs_done

    stats = stream.stats or CorpusStats()
    block = spec.data.max_length
    source = spec.model.name or f"{spec.model.arch}/{spec.model.preset} (from scratch)"
    card = {"task": "pretrain", "task_options": spec.task.options(), "labels": [], "base_model": source,
            "arch": _arch_of(model), "tuning": "full", "max_length": block, "tokenizer": tok_source,
            "trainable_params": params[0], "total_params": params[1],
            "metrics": {k: {m: v for m, v in d.items() if isinstance(v, float)} for k, d in metrics.items()},
            "data": {"text_column": spec.data.text_column, "document_boundary": spec.data.document_boundary}}
    if extension:
        card["vocabulary_extension"] = extension
    save_artifact(run_dir / "model", model, tokenizer, card)
    training = {"optimizer steps": result.global_step, "epochs trained": round(result.epochs_trained, 3),
                "precision": result.precision,
                "processes": result.world_size, "train time (s)": round(result.train_seconds, 1),
                "wall time incl. eval (s)": round(wall, 1),
                "train tokens/s": round(result.samples_per_second * block, 1),
                "best step": result.best_step, f"best {spec.train.metric}": result.best_metric,
                "document boundary": boundary_used(spec.data.document_boundary, stats)}
    summary = {"task": f"pretrain ({spec.task.objective})", "model": source, "tokenizer": tok_source,
               "vocabulary": len(tokenizer), **_extension_rows(extension), "block size (data.max_length)": block,
               "epochs": epochs_done(result, spec.train),
               "batch size": spec.train.batch_size, "learning rate": spec.train.lr, "seed": spec.seed,
               "train corpus": f"`{spec.data.train}`: {stats.files} file(s), {stats.texts} texts, "
               f"{stats.tokens} tokens, {stats.blocks} blocks per epoch",
               "skipped files": "; ".join(f"{p} ({why})" for p, why in stats.skipped_files) or "none",
               "run dir": f"`{run_dir}`", "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    report = ReportInput(title=f"lmkernel pretrain: {run_dir.name}", labels=[], metrics=metrics,
                         data_counts={"train": stats.blocks, "validation": len(val)},  # blocks
                         skipped={"train": stats.bad_lines} if stats.bad_lines else {}, summary=summary,
                         params=params, training=training, history=result.history)
    out = write_report(run_dir, report, primary="validation")
    cleanup(run_dir, spec.train.keep_optimizer)
    shutil.rmtree(run_dir / TOKENIZER_DIR, ignore_errors=True)  # it lives on in model/
    return out


def _extension_rows(extension: dict | None) -> dict[str, str]:
    if not extension:
        return {}
    shown = " ".join(extension["examples"])
    return {"vocabulary extension": f"+{extension['added']} pieces from {extension['scanned_texts']} texts "
            f"(most frequent: {shown})",
            "[UNK] share of the corpus": f"{extension['unk_before']:.1%} before, {extension['unk_after']:.1%} after"}
