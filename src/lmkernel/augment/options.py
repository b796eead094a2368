"""``data.augment``: the options of training-data augmentation (EDA operations, back-translation, the gain guard).

The defaults follow Wei & Zou (2019), "EDA: Easy Data Augmentation Techniques for Boosting Performance on
Text Classification Tasks": alpha (the share of a text's words an operation changes) and n_aug (new texts
per original) scale down as the training set grows, per their Table 3.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..specmodel import SpecModel

OPS = ("synonym", "insert", "swap", "delete")  # EDA's SR, RI, RS, RD
Op = Literal["synonym", "insert", "swap", "delete"]

# Wei & Zou (2019) Table 3: (largest training set, alpha, n_aug); beyond the last row: its values
EDA_TABLE = ((500, 0.05, 16), (2000, 0.05, 8), (5000, 0.1, 4))
EDA_LARGE = (0.1, 4)


class BackTranslation(SpecModel):
    """Paraphrases made by translating each text into a pivot language and back with a causal LM."""

    model: str = Field(description="The translating model: an lmkernel run directory (chat/translation) or a "
                       "model alias/local causal-LM folder (e.g. gemma3). Prompted to translate both ways.")
    source_language: str = Field("English", min_length=1, description="The language of the training texts.")
    pivot_language: str = Field("French", min_length=1, description="The language translated into and back from.")
    max_new_tokens: int = Field(96, gt=0, le=4096, description="Longest translation, in tokens.")
    batch_size: int = Field(8, gt=0, le=1024, description="Prompts generated together.")
    repetition_penalty: float = Field(1.0, ge=1.0, le=10.0, description="Above 1 discourages a small model's "
                                      "loops (the same word again and again).")
    max_rows: int | None = Field(None, gt=0, description="Back-translate at most this many training rows (the "
                                 "first in file order); generation is slow on a CPU. Default: all.")


class AugmentOptions(SpecModel):
    """``data.augment``: new training rows made from the old ones, kept only if validation improves."""

    ops: list[Op] = Field(list(OPS), min_length=1, description="EDA operations: synonym (replace words by "
                          "embedding-table neighbours), insert (a neighbour of a word at a random place), swap "
                          "(two words), delete (each word with probability alpha). Chinese text is cut into words "
                          "by jieba.")
    alpha: float | Literal["auto"] = Field("auto", description="Share of a text's words each operation changes, "
                                           "in (0, 0.5]. auto: Wei & Zou's table (0.05 up to 2,000 rows, else 0.1).")
    n_aug: int | Literal["auto"] = Field("auto", description="New texts per training text, 1-64 (spread over the "
                                         "operations in turn). auto: Wei & Zou's table (16 up to 500 rows, 8 up to "
                                         "2,000, else 4).")
    synonym_model: str | None = Field(None, description="Encoder whose input-embedding table gives the synonyms "
                                      "(nearest whole-word pieces by cosine). Default: model.name.")
    neighbours: int = Field(5, gt=0, le=50, description="Synonym candidates per word (one is drawn).")
    min_similarity: float = Field(0.35, ge=-1, le=1, description="Cosine below which an embedding neighbour "
                                  "is not taken as a synonym.")
    back_translation: BackTranslation | None = Field(None, description="Also add a back-translated paraphrase "
                                                     "of each training text (one per text).")
    guard: bool = Field(True, description="Train once without and once with augmentation and keep the run with "
                        "the better validation metric (both are reported; needs a validation split). false: "
                        "train on augmented data only.")

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, v: float | str) -> float | str:
        if v != "auto" and not 0 < v <= 0.5:
            raise ValueError(f"data.augment.alpha must be in (0, 0.5] (the share of words changed), not {v}")
        return v

    @field_validator("n_aug")
    @classmethod
    def _n_aug_range(cls, v: int | str) -> int | str:
        if v != "auto" and not 1 <= v <= 64:
            raise ValueError(f"data.augment.n_aug must be between 1 and 64 new texts per text, not {v}")
        return v

    @model_validator(mode="after")
    def _distinct_ops(self) -> AugmentOptions:
        if len(set(self.ops)) != len(self.ops):
            raise ValueError("data.augment.ops lists an operation twice")
        return self


def eda_parameters(opts: AugmentOptions, n_rows: int) -> tuple[float, int]:
    """(alpha, n_aug) for a training set of ``n_rows``: the options' values, or Wei & Zou's for 'auto'."""
    alpha, n_aug = EDA_LARGE
    for limit, a, n in EDA_TABLE:
        if n_rows <= limit:
            alpha, n_aug = a, n
            break
    return (alpha if opts.alpha == "auto" else opts.alpha), (n_aug if opts.n_aug == "auto" else opts.n_aug)
