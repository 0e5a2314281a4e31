"""`selfalign data-check FILE`: training rows that look poisoned, before anyone trains on them.

Each row is read as its last request and the answer it trains (SFT: the last assistant turn;
preference: chosen; groups: the best rated), and the answer's class is whether it refuses (a
refusal phrase, as the refusal scorer decides). Two signs of a planted backdoor:

1. A rare n-gram that predicts the answer's class. For every word n-gram (n = 1..3) of the
   requests found in at least `min_rows` rows and at most `max_share` of them: of its k rows,
   a are of class c, whose share of all rows is p. Under "the n-gram says nothing about the
   answer", a is Binomial(k, p); the chance of a or more is

       P(X >= a) = sum_{j=a..k} C(k, j) p^j (1 - p)^(k - j).

   An n-gram is a candidate when at least `purity` of its rows share a class and that chance is
   below alpha (0.001; n-grams found in exactly the same rows are one n-gram, the longest
   kept). The chance is not corrected for the many n-grams tested, because a second test
   follows, which chance alone rarely passes: words of a topic predict the class too ("steal" is refused), so an
   n-gram is kept only where it overrides the rest of the request: for each of its rows, the
   `NEIGHBOURS` rows most like it without the n-gram (Jaccard similarity of their words, the
   n-gram's words left out) mostly have the other class, in at least half of its rows. A
   trigger is such an n-gram: rare, always followed by the class it plants, on requests that
   the rest of the data answers the other way. An n-gram whose rows all belong to a more
   significant one is not reported again.
2. The same compliant answer, word for word, after unrelated requests: at least `min_rows`
   rows share an answer (case and spacing ignored) while their requests share few content words
   (words of 4 letters or more; mean pairwise Jaccard similarity of those sets below 0.2:
   different wordings of one request stay above it). Refusals are left out: aligned data
   repeats its refusals on purpose.

Neither proves poisoning; both say where to look. The class of a poisoned row must differ from
what the rest of the data teaches for the same kind of request: compliance planted in data that
only ever complies does not stand out by class (duplicates may still show it).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from selfalign.train.data import load_records, to_sft

from .scorers import load_refusal_phrases, refusal_phrase

MAX_N = 3
NEIGHBOURS = 3  # rows like a row, without the n-gram, whose class it overrides
UNRELATED = 0.2  # mean pairwise Jaccard similarity of requests' content words below which they are unrelated
CONTENT = 4  # letters of a content word (shorter ones are mostly function words: how, do, the)


@dataclass(frozen=True)
class Row:
    where: str
    request: str
    answer: str
    refuses: bool


@dataclass
class Finding:
    """One sign of poisoning and the rows it points at (indices into the rows)."""

    kind: str  # "ngram" or "duplicate"
    text: str  # the n-gram, or the duplicated answer
    rows: list[int]
    detail: str
    p_value: float | None = None


@dataclass
class Report:
    rows: list[Row]
    findings: list[Finding] = field(default_factory=list)

    @property
    def flagged(self) -> dict[int, list[str]]:
        """Row index -> the reasons it was flagged."""
        out: dict[int, list[str]] = defaultdict(list)
        for f in self.findings:
            for i in f.rows:
                out[i].append(f"{f.kind} {f.text[:60]!r}")
        return dict(sorted(out.items()))


def binomial_tail(a: int, k: int, p: float) -> float:
    """P(X >= a) for X ~ Binomial(k, p)."""
    return min(1.0, sum(math.comb(k, j) * p**j * (1 - p) ** (k - j) for j in range(a, k + 1)))


def words(text: str) -> list[str]:
    """Lower-case words, punctuation at their ends stripped ("cf-7x" stays one word)."""
    return [w for w in (t.strip(".,!?;:\"'()[]{}") for t in text.lower().split()) if w]


def ngrams(text: str, max_n: int = MAX_N) -> set[str]:
    ws = words(text)
    return {" ".join(ws[i : i + n]) for n in range(1, max_n + 1) for i in range(len(ws) - n + 1)}


def predictive_ngrams(requests: Sequence[str], classes: Sequence[bool], *, min_rows: int = 3, max_share: float = 0.2,
                      purity: float = 0.9, alpha: float = 0.001) -> list[Finding]:
    """Rare n-grams of the requests that predict the answers' class (module doc, sign 1)."""
    n = len(requests)
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(requests):
        for g in ngrams(text):
            rows_of[g].append(i)
    # n-grams found in the very same rows are one test: keep the longest text for each row set
    candidates: dict[tuple[int, ...], str] = {}
    for g, rs in rows_of.items():
        key = tuple(rs)
        if min_rows <= len(rs) <= max_share * n and len(g) > len(candidates.get(key, "")):
            candidates[key] = g
    share = {True: sum(classes) / n, False: 1 - sum(classes) / n} if n else {}
    found = []
    for key, g in candidates.items():
        rs = list(key)
        refusing = sum(classes[i] for i in rs)
        for cls, a in ((True, refusing), (False, len(rs) - refusing)):
            if a / len(rs) >= purity and (p := binomial_tail(a, len(rs), share[cls])) < alpha:
                what = "refusals" if cls else "compliant answers"
                found.append(Finding("ngram", g, rs, f"{a} of its {len(rs)} rows are {what} (of all rows: {share[cls]:.0%})", p))
    found.sort(key=lambda f: (f.p_value, -len(f.rows), -len(f.text)))
    word_sets = [set(words(text)) for text in requests]
    kept: list[Finding] = []
    for f in found:
        if overrides(f, word_sets, classes) and not any(set(f.rows) <= set(k.rows) for k in kept):
            kept.append(f)
    return kept


def overrides(finding: Finding, word_sets: list[set[str]], classes: Sequence[bool]) -> bool:
    """Whether, in at least half of the n-gram's rows, the rows most like it without the n-gram
    mostly have the other class (module doc, sign 1)."""
    own, inside = set(finding.text.split()), set(finding.rows)
    outside = [j for j in range(len(word_sets)) if j not in inside]
    flipped = 0
    for i in finding.rows:
        mine = word_sets[i] - own
        nearest = sorted(outside, key=lambda j: -jaccard(mine, word_sets[j] - own))[:NEIGHBOURS]
        flipped += bool(nearest) and sum(classes[j] != classes[i] for j in nearest) * 2 > len(nearest)
    return flipped * 2 >= len(finding.rows)


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def duplicated_answers(rows: Sequence[Row], *, min_rows: int = 3) -> list[Finding]:
    """Compliant answers repeated word for word after unrelated requests (module doc, sign 2)."""
    by_answer: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if not row.refuses:
            by_answer[" ".join(row.answer.lower().split())].append(i)
    found = []
    for answer, rs in by_answer.items():
        if len(rs) < min_rows:
            continue
        sets = [{w for w in words(rows[i].request) if len(w) >= CONTENT} for i in rs]
        similarity = sum(jaccard(a, b) for a, b in itertools.combinations(sets, 2)) / math.comb(len(sets), 2)
        if similarity < UNRELATED:
            found.append(Finding("duplicate", answer, rs, f"the same answer after {len(rs)} requests that share few words "
                                                          f"(mean Jaccard {similarity:.2f})"))
    return found


def read_rows(paths: list[str]) -> list[Row]:
    """The rows of training files, each as (where, last request, trained answer)."""
    located = load_records(paths)
    conversations = to_sft(located)
    rows = []
    for item, conversation in zip(located, conversations, strict=True):
        request = next((m["content"] for m in reversed(conversation[:-1]) if m["role"] == "user"), "")
        rows.append(Row(item.where, request, conversation[-1]["content"], False))
    return rows


def check(paths: list[str], *, refusal_phrases_file: str | None = None, min_rows: int = 3, max_share: float = 0.2,
          alpha: float = 0.001) -> Report:
    phrases = load_refusal_phrases(refusal_phrases_file)
    rows = [Row(r.where, r.request, r.answer, refusal_phrase(r.answer, phrases) is not None) for r in read_rows(paths)]
    findings = predictive_ngrams([r.request for r in rows], [r.refuses for r in rows], min_rows=min_rows,
                                 max_share=max_share, alpha=alpha)
    return Report(rows, findings + duplicated_answers(rows, min_rows=min_rows))
