"""Tokens to streamed text: incremental decoding that never emits half a character or half a stop string.

Byte-level BPE splits one character over several tokens, so the text of the tokens so far may
end in U+FFFD until the next token completes it; and a stop string ("\\n\\nUser:") may be half
generated. Both are held back until resolved. Decoding the whole completion each step keeps
this exact (tokenizers merge spaces differently at token boundaries); completions are at most a
few thousand tokens, so the cost is small beside a decode step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class TextStream:
    """Text deltas for one request's tokens, with stop strings cut off.

    Args:
        decode: token ids -> text (the tokenizer's, special tokens skipped).
        stop: strings that end the completion; they are not part of the returned text.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()):
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self.text = ""  # the completion so far, as far as it is final
        self._sent = 0  # characters of ``text`` already handed out
        self.stopped = False  # a stop string appeared

    def push(self, tokens: Sequence[int], final: bool = False) -> str:
        """All tokens generated so far -> the new text that is safe to send (may be "")."""
        full = self._decode(tokens)
        # a stop string may start in text already sent (held back) -> search from before it
        start = max(0, self._sent - max((len(s) for s in self._stop), default=0))
        cut = min((i for s in self._stop if (i := full.find(s, start)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            full, final = full[:cut], True
        safe = len(full)
        if not final:
            if full.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
                safe = len(full.rstrip("\ufffd"))
            safe = min(safe, len(full) - _held_for_stop(full, self._stop))
        safe = max(safe, self._sent)
        self.text = full[:safe]
        delta = self.text[self._sent:]
        self._sent = safe
        return delta


def _held_for_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
