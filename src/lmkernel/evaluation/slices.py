"""Slices of an evaluation set that people ask about: which script a text is in, how long it is."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .textmetrics import HAN

_HAN = re.compile(f"[{HAN}]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_OTHER = re.compile(f"[^\\W\\d_A-Za-z\u00c0-\u024f{HAN}]")  # letters of any other script
SCRIPTS = ("latin", "han", "other")


def script_of(text: str) -> str:
    """``han`` when Han characters are at least as many as Latin and other letters, ``other`` when another
    script's letters outnumber Latin ones, else ``latin`` (ASCII text, digits only included). One rule for error
    slices, the monitor and the drift reference, so training and serving bin a text alike. Reads 512 characters."""
    text = text[:512]
    if text.isascii():  # the common case, on the serving path: no regex
        return "latin"
    han, latin, other = len(_HAN.findall(text)), len(_LATIN.findall(text)), len(_OTHER.findall(text))
    if han and han >= latin and han >= other:
        return "han"
    return "other" if other > latin else "latin"


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
