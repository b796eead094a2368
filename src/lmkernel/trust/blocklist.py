"""Blocklists: words and phrases matched after normalisation, reported at offsets of the original text.

Normalisation folds what a user can vary without changing what the text says: NFKC (full-width
``ＢＡＤ`` is ``BAD``, ``①`` is ``1``), case (casefold, so ``Straße`` meets ``STRASSE``) and
traditional Chinese characters (``壞`` is ``坏``, through ``zhconv``'s tables shipped with the
package). It is done one character at a time, so each normalised character knows the original
character it came from and a match maps back to the exact original span. Latin-script entries
match whole words only (``ass`` does not fire inside ``class``); Han entries match anywhere,
since Chinese is written without spaces.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import LmkError


@lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    out = unicodedata.normalize("NFKC", ch).casefold()
    if any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in out):
        import zhconv

        out = zhconv.convert(out, "zh-cn")
    return out


def normalise(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index of the original character."""
    parts: list[str] = []
    owner: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold(ch) if not ch.isascii() or ch.isupper() else ch
        parts.append(folded)
        owner.extend([i] * len(folded))
    return "".join(parts), owner


_WORD = r"[^\W\u3400-\u9fff]"  # a letter or digit of a script written with spaces (not Han)


def _entry(word: str) -> str:
    """The regex of one entry: whole words where it starts or ends with a letter or digit of a spaced script."""
    body = re.escape(word)
    if re.match(_WORD, word[0]):
        body = f"(?<!{_WORD})" + body
    if re.match(_WORD, word[-1]):
        body += f"(?!{_WORD})"
    return body


@dataclass(frozen=True)
class Blocklist:
    """Compiled entries: one alternation over the normalised words, longest first."""

    words: tuple[str, ...]
    pattern: re.Pattern[str] | None

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, entry) spans in the ORIGINAL text, non-overlapping, in text order."""
        if self.pattern is None or not text:
            return []
        folded, owner = normalise(text)
        spans = []
        for m in self.pattern.finditer(folded):
            start, end = owner[m.start()], owner[m.end() - 1] + 1
            spans.append((start, end, m.group()))
        return spans


def read_words(path: Path) -> list[str]:
    """One entry a line; blank lines and lines starting with ``#`` are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LmkError(f"cannot read the blocklist file: {e}", where=str(path),
                       fix="give a UTF-8 text file with one word or phrase per line") from e
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def build(words: list[str]) -> Blocklist:
    """Normalise and compile the entries (empty entries are dropped)."""
    folded = sorted({normalise(w.strip())[0] for w in words if w.strip()}, key=lambda w: (-len(w), w))
    if not folded:
        return Blocklist((), None)
    return Blocklist(tuple(folded), re.compile("|".join(_entry(w) for w in folded)))
