"""An answer's text as its tokens are decoded, for a client that streams it (`selfalign serve`
with `stream: true`).

Text is passed on only once later tokens can no longer change it, so what a client has been
sent is always the start of the answer's final text (`batch.read_completion`'s):
- a character split over tokens (byte-level vocabularies split UTF-8) waits for its last byte;
- text that may be the start of a stop string waits: the final text is cut before a stop string;
- where the tokenizer cleans up spaces (" ." becomes "."), text that may be the start of such a
  pattern waits, since the next token may take its space away.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

#: What transformers' `clean_up_tokenization` replaces, each starting with the space it drops.
SPACE_CLEANUPS = (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're")


class TextStream:
    """Feed it a row's tokens one at a time; each `push` returns the text that became final.

    `decode(tokens)` is the answer's text as the provider reads it out (special tokens left out);
    `cleans_spaces`: whether that text has its spaces cleaned up (see `SPACE_CLEANUPS`).
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: tuple[str, ...] = (), cleans_spaces: bool = False) -> None:
        self.decode = decode
        self.stop = stop
        self.waits_for = stop + (SPACE_CLEANUPS if cleans_spaces else ())
        self.tokens: list[int] = []
        self.sent = 0  # characters of the text passed on so far

    @classmethod
    def of_tokenizer(cls, tokenizer: Any, stop: tuple[str, ...] = ()) -> TextStream:
        """The text as a transformers tokenizer decodes it (`batch.read_completion`'s way)."""
        cleans = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
        return cls(functools.partial(tokenizer.decode, skip_special_tokens=True), stop, cleans)

    def push(self, token: int) -> str:
        """The text this token makes final ('' while it may still change)."""
        self.tokens.append(token)
        # The whole answer decoded anew: what a partial decode gives at its start may differ
        # (leading spaces, merged bytes), and an answer is a few hundred tokens at most.
        text = self.decode(self.tokens)
        end = final_length(text, self.stop, self.waits_for)
        if end <= self.sent:
            return ""
        delta, self.sent = text[self.sent : end], end
        return delta


def final_length(text: str, stop: tuple[str, ...], waits_for: tuple[str, ...]) -> int:
    """How much of `text` later tokens cannot change: up to its first stop string, and before
    an unfinished character or a tail that may begin a stop string or a cleaned-up pattern."""
    end = len(text)
    for s in stop:
        found = text.find(s)
        if found >= 0:
            end = min(end, found)
    while end and text[end - 1] == "\ufffd":  # a character whose last byte is still to come
        end -= 1
    for fragment in waits_for:
        end = min(end, len(text) - _tail_starting(text, fragment))
    return max(end, 0)


def _tail_starting(text: str, fragment: str) -> int:
    """Length of the longest tail of `text` that is a proper start of `fragment` (a whole stop
    string is found by `final_length`; a whole cleanup pattern left in the text stays)."""
    for k in range(min(len(fragment) - 1, len(text)), 0, -1):
        if text.endswith(fragment[:k]):
            return k
    return 0
