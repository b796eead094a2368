"""Pretraining: masked LM (encoders) or next-token LM (decoders) on packed blocks of raw text.

Training data does not pass through ``read``/``encode``: ``lmkernel pretrain`` streams it (see
``pretrain/corpus.py``). ``read``/``encode`` exist for held-out text (validation, ``lmkernel
eval``), which is small enough to hold; their blocks carry fixed masks, so the validation loss of
a masked LM is comparable between evaluations. Training blocks get fresh masks in ``collate``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

if TYPE_CHECKING:
    import torch

from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions

EVAL_MASK_SEED = 1234


class Options(TaskOptions):
    type: Literal["pretrain"] = "pretrain"
    objective: Literal["mlm", "clm"] = Field("clm", description="mlm (masked LM, encoders) or clm (next-token, "
                                            "decoders).")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="mlm: share of tokens masked (80/10/10).")
    whole_word_mask: bool = Field(False, description="mlm: mask whole words (Chinese words via jieba).")


class PretrainTask:
    name: ClassVar[str] = "pretrain"

    def __init__(self, options: Any) -> None:
        self.options = options
        self.objective: str = options.objective
        self.auto_model = "AutoModelForMaskedLM" if self.objective == "mlm" else "AutoModelForCausalLM"
        self.mask: dict[str, Any] | None = None  # mask id, vocab size, special ids (from bind())

    def bind(self, tokenizer: Any) -> None:
        """Learn the tokenizer's mask token and vocabulary (collate has only the pad id)."""
        if self.objective != "mlm":
            return
        if tokenizer.mask_token_id is None:
            from ..errors import LmkError

            raise LmkError("objective mlm needs a tokenizer with a mask token ([MASK]); this one has none",
                           where="task.objective", fix="use objective clm for a decoder, or an encoder backbone")
        self.mask = {"mask_id": tokenizer.mask_token_id, "vocab_size": len(tokenizer),
                     "special_ids": sorted(set(tokenizer.all_special_ids))}

    # ---- held-out text -------------------------------------------------------------------------------
    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        from ..pretrain.corpus import CorpusStats, iter_texts, resolve_files

        stats = CorpusStats()
        files = resolve_files(path, str(path))
        texts = iter_texts(files, data.text_column, data.on_bad_rows, stats, data.document_boundary)
        examples = [Example(t, None, str(path), 0) for t in texts]
        return Dataset(examples, stats.bad_lines)

    def infer_labels(self, examples: list[Example]) -> list[str]:
        return []

    def build_model(self, path: Path, labels: list[str]) -> Any:
        import transformers

        from ..models.resolve import load_pretrained

        return load_pretrained(getattr(transformers, self.auto_model), path)

    def encode(self, examples: list[Example], tokenizer: Any, labels: list[str], max_length: int) -> list[Feature]:
        """Pack the texts into blocks; masked-LM blocks get fixed (seeded) masks and their labels."""
        import torch

        from ..pretrain.corpus import BlockStream, CorpusStats, Packing
        from ..pretrain.tokenizer import TextEncoder, separator_ids

        self.bind(tokenizer)
        sep, prefix, suffix = separator_ids(tokenizer, "encoder" if self.objective == "mlm" else "decoder")
        whole = self.objective == "mlm" and self.options.whole_word_mask
        stream = BlockStream(lambda stats: (e.text for e in examples), TextEncoder(tokenizer, whole),
                             Packing(max_length, sep, prefix, suffix), batch_size=1, seed=0)
        blocks = list(stream.blocks(CorpusStats()))
        if self.objective == "mlm" and blocks:
            gen = torch.Generator().manual_seed(EVAL_MASK_SEED)
            for start in range(0, len(blocks), 256):
                part = blocks[start:start + 256]
                inputs, targets = self._masked(part, gen)
                for f, x, y in zip(part, inputs.tolist(), targets.tolist()):
                    f["input_ids"], f["labels"] = x, y
                    f.pop("word_starts", None)
        return blocks

    # ---- batches ------------------------------------------------------------------------------------
    def _masked(self, features: list[Feature], generator: torch.Generator | None = None):
        import torch

        from ..pretrain.masking import mask_tokens

        ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
        starts = (torch.tensor([f["word_starts"] for f in features], dtype=torch.long)
                  if "word_starts" in features[0] else None)
        return mask_tokens(ids, prob=self.options.mask_prob, word_starts=starts, generator=generator, **self.mask)

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        """Blocks all have the same length: stack them; labels are fixed (eval), fresh masks (mlm) or the ids."""
        import torch

        if "labels" in features[0]:
            ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
            labels = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        elif self.objective == "mlm":
            ids, labels = self._masked(features)
        else:
            ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
            labels = ids.clone()  # the model shifts labels by one inside its loss
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def forward(self, model: Any, batch: Batch) -> Any:
        """mlm: the vocabulary head runs only at masked positions (same loss, a fraction of its cost)."""
        if self.objective != "mlm":
            return model(**batch)
        from ..pretrain.mlm_head import masked_only_forward

        return masked_only_forward(model, batch)

    def step_outputs(self, out: Any, batch: Batch) -> dict[str, list]:
        labels = batch["labels"] if self.objective == "mlm" else batch["labels"][:, 1:]
        n = int((labels != -100).sum())
        return {"loss_sum": [float(out.loss) * n], "tokens": [n]}

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        tokens = sum(outputs.get("tokens", []))
        loss = sum(outputs.get("loss_sum", [])) / max(tokens, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": tokens}

    # ---- use ----------------------------------------------------------------------------------------
    def prompt_style(self) -> Any:
        """A plain LM continues its prompt as-is, even when its tokenizer kept a chat template."""
        from ..generation import PLAIN

        return PLAIN

    def generate(self, model: Any, tokenizer: Any, prompts: list[str], **sampling: Any) -> list[str]:
        """Continue each prompt (causal LM): plain text in, continuation out."""
        import torch

        if self.objective != "clm":
            from ..errors import LmkError

            raise LmkError("a masked-LM (encoder) artifact cannot generate text", where="task.objective",
                           fix="use predict with [MASK] in the text, or pretrain a decoder (objective clm)")
        sampling.setdefault("max_new_tokens", 32)
        sampling.setdefault("do_sample", False)
        outs = []
        model.eval()
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(**enc, pad_token_id=tokenizer.pad_token_id, **sampling)
            outs.append(tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        return outs

    def predict(self, model: Any, tokenizer: Any, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]:
        """mlm: the top 5 fillers of each [MASK]; clm: a greedy continuation."""
        import torch

        if self.objective == "clm":
            return [{"text": t, "continuation": c} for t, c in zip(texts, self.generate(model, tokenizer, texts))]
        results = []
        model.eval()
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            with torch.no_grad():
                logits = model(**enc).logits[0]
            where = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
            fills = [[{"token": tokenizer.convert_ids_to_tokens(int(i)), "score": float(p)}
                      for p, i in zip(*logits[pos].softmax(-1).topk(5))] for pos in where]
            results.append({"text": text, "masks": fills})
        return results


INFO = TaskInfo("pretrain", PretrainTask, Options, metrics=("loss", "perplexity"))
