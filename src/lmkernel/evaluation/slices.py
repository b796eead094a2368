"""Slices of an evaluation set that people ask about: which script a text is in, how long it is."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .textmetrics import HAN

_HAN = re.compile(f"[{HAN}]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
SCRIPTS = ("latin", "han", "other")


def script_of(text: str) -> str:
    """``han`` when Han characters are at least a third of the letters (the ``mostly_unspaced`` rule),
    ``latin`` when Latin letters are the majority of the letters, else ``other`` (Cyrillic, Arabic, digits only)."""
    letters = sum(ch.isalpha() for ch in text)
    if not letters:
        return "other"
    if len(_HAN.findall(text)) * 3 >= letters:
        return "han"
    return "latin" if len(_LATIN.findall(text)) * 2 > letters else "other"


def length_edges(lengths: Sequence[int]) -> list[int]:
    """Quartile boundaries of text lengths in characters: [min, q1, q2, q3, max]."""
    import numpy as np

    if not lengths:
        return [0, 0]
    return [int(round(float(q))) for q in np.quantile(np.asarray(lengths), [0, 0.25, 0.5, 0.75, 1])]


def length_bucket(n: int, edges: Sequence[int]) -> str:
    """The quartile bucket of a length, labelled by its character range (``12-30 chars``)."""
    for lo, hi in zip(edges, edges[1:]):
        if n <= hi:
            return f"{lo}-{hi} chars"
    return f"{edges[-2]}-{edges[-1]} chars"


def length_buckets(lengths: Sequence[int]) -> list[str]:
    """Each length's quartile bucket; duplicate boundaries (many equal lengths) merge buckets."""
    edges = sorted(set(length_edges(lengths)))
    if len(edges) == 1:
        edges = edges * 2
    return [length_bucket(n, edges) for n in lengths]
