"""ROUGE-L novelty against a growing pool, exactly as the `rouge-score` package scores it (no
stemmer), without comparing every pair.

Self-instruct drops a new instruction whose ROUGE-L F1 against any instruction in the pool
exceeds 0.7. ROUGE-L F1 of token lists a (length m) and b (length n) is

    F = 2 * P * R / (P + R),  P = lcs / n,  R = lcs / m   (so F = 2 * lcs / (m + n))

and the longest common subsequence is at most the multiset overlap of the two token lists,
overlap = sum over tokens t of min(count_a(t), count_b(t)). So F <= 2 * overlap / (m + n): a
pair whose bound is below the threshold cannot exceed it and is skipped. The overlaps of one
candidate with the whole pool come from an inverted index (token -> pool entries holding it,
with counts) in a few numpy operations; only the pairs that pass get an exact LCS, computed
bit-parallel (Hyyro 2004) on rouge-score's own tokens, and their F by rouge-score's own formula.
A pair is skipped only when its bound is below the threshold by more than float rounding, so the
kept set is the one a brute-force loop over `RougeScorer.score` keeps (tests/principles prove it
on 1,000 instructions; benchmarks/rouge_filter.py times both).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rouge_score import rouge_scorer, scoring, tokenizers

THRESHOLD = 0.7  # the self-instruct rule: ROUGE-L F1 above this is too similar
_MARGIN = 1e-9  # bounds this close to the threshold go to the exact computation
_TOKENIZER = tokenizers.DefaultTokenizer(use_stemmer=False)


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokens of `text` (lowercased alphanumeric runs, no stemming)."""
    return _TOKENIZER.tokenize(text)


def brute_force_scorer() -> rouge_scorer.RougeScorer:
    """The reference the fast pool must agree with: `scorer.score(a, b)["rougeL"].fmeasure`."""
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def lcs_length(a: list[int], b: list[int]) -> int:
    """Length of the longest common subsequence of two id lists, bit-parallel: one big-integer
    step per element of b (Hyyro's formulation of Allison and Dix)."""
    if not a or not b:
        return 0
    masks: dict[int, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f1(lcs: int, target_len: int, prediction_len: int) -> float:
    """rouge-score's F1 from an LCS length, computed as it computes it (same float result)."""
    if not target_len or not prediction_len:
        return 0.0
    return scoring.fmeasure(lcs / prediction_len, lcs / target_len)


class RougePool:
    """Texts kept so far; `max_similarity(text)` is the highest ROUGE-L F1 of `text` against
    them whenever that exceeds `threshold`, else a value not above it (pairs that cannot
    exceed it are never scored)."""

    def __init__(self, texts: list[str] = (), threshold: float = THRESHOLD) -> None:  # type: ignore[assignment]
        self.threshold = threshold
        self._ids: dict[str, int] = {}
        self._seqs: list[list[int]] = []
        self._lengths = _Growable(np.int32)
        self._postings: dict[int, tuple[_Growable, _Growable]] = {}  # token -> (pool indices, counts)
        self.exact_pairs = 0  # pairs that needed an exact LCS (for benchmarks)
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self._seqs)

    def add(self, text: str) -> None:
        seq = self._encode(text)
        index = len(self._seqs)
        self._seqs.append(seq)
        self._lengths.append(len(seq))
        for token, count in Counter(seq).items():
            rows, counts = self._postings.setdefault(token, (_Growable(np.int32), _Growable(np.int32)))
            rows.append(index)
            counts.append(count)

    def too_similar(self, text: str) -> bool:
        return self.max_similarity(text) > self.threshold

    def max_similarity(self, text: str) -> float:
        seq = self._encode(text, grow=False)
        if not seq or not self._seqs:
            return 0.0
        overlap = np.zeros(len(self._seqs), dtype=np.int32)
        for token, count in Counter(seq).items():
            if token in self._postings:
                rows, counts = self._postings[token]
                overlap[rows.view()] += np.minimum(counts.view(), count)
        lengths = self._lengths.view()
        bound = 2.0 * overlap / (lengths + len(seq))
        best = 0.0
        for row in np.flatnonzero(bound >= self.threshold - _MARGIN):
            self.exact_pairs += 1
            target = self._seqs[row]
            best = max(best, rouge_l_f1(lcs_length(seq, target), len(target), len(seq)))
        return best

    def _encode(self, text: str, grow: bool = True) -> list[int]:
        """Token ids; a token the pool has never seen gets an id no pool entry holds."""
        ids = []
        for token in rouge_tokens(text):
            if token not in self._ids:
                if not grow:
                    ids.append(-1 - len(ids))  # unique, matches nothing (LCS sees it as itself)
                    continue
                self._ids[token] = len(self._ids)
            ids.append(self._ids[token])
        return ids


class _Growable:
    """An append-only numpy array with amortised doubling."""

    def __init__(self, dtype: type) -> None:
        self._data = np.empty(8, dtype=dtype)
        self._size = 0

    def append(self, value: int) -> None:
        if self._size == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self._size] = value
        self._size += 1

    def view(self) -> np.ndarray:
        return self._data[: self._size]
