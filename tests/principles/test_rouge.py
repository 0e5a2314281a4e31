"""The ROUGE-L novelty pool keeps exactly what a brute-force loop over rouge-score keeps."""

from __future__ import annotations

import random

import pytest
from rouge_score.rouge_scorer import _lcs_table

from selfalign.methods.principles.rouge import THRESHOLD, RougePool, brute_force_scorer, lcs_length, rouge_l_f1

WORDS = "the a of to and in write explain describe how why what list give example story poem about for with".split()


def test_lcs_matches_rouge_scores_table_on_random_sequences():
    rng = random.Random(0)
    for _ in range(3000):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 30))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 30))]
        assert lcs_length(a, b) == (_lcs_table(a, b)[-1][-1] if a and b else 0), (a, b)


def test_f1_by_hand():
    # "the cat sat on the mat" vs "the cat on the mat": LCS 5, F = 2*5/(6+5) = 10/11
    scorer = brute_force_scorer()
    assert rouge_l_f1(5, 6, 5) == pytest.approx(10 / 11)
    assert rouge_l_f1(5, 6, 5) == scorer.score("the cat sat on the mat", "the cat on the mat")["rougeL"].fmeasure


def brute_force_keep(texts):
    scorer, kept = brute_force_scorer(), []
    for text in texts:
        if all(scorer.score(k, text)["rougeL"].fmeasure <= THRESHOLD for k in kept):
            kept.append(text)
    return kept


def fast_keep(texts):
    pool, kept = RougePool(), []
    for text in texts:
        if not pool.too_similar(text):
            pool.add(text)
            kept.append(text)
    return kept


def near_duplicates(n, seed):
    """Short instructions over a small vocabulary, a third of them edits of earlier ones, and
    pairs at exactly F = 0.7 (LCS 7 of 10 and 10 tokens), where float rounding decides."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if out and i % 3 == 0:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            out.append(" ".join(words))
        elif i % 10 == 1:
            base = [f"x{i}{k}" for k in range(10)]
            out.append(" ".join(base))
            out.append(" ".join(base[:7] + [f"y{i}{k}" for k in range(3)]))  # F exactly 0.7: kept
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 12))))
    return out


def test_pool_keeps_what_brute_force_keeps():
    texts = near_duplicates(400, seed=1)
    kept = fast_keep(texts)
    assert kept == brute_force_keep(texts)
    assert 0 < len(kept) < len(texts)


@pytest.mark.slow
def test_pool_keeps_what_brute_force_keeps_on_1000_instructions():
    texts = near_duplicates(1000, seed=2)
    assert fast_keep(texts) == brute_force_keep(texts)


def test_unseen_words_and_punctuation_only_texts():
    pool = RougePool(["Explain how tides work."])
    assert pool.max_similarity("!!!") == 0.0  # no tokens: rouge-score scores 0
    assert not pool.too_similar("Quantum zebras juggle marmalade")
    assert pool.too_similar("explain HOW tides work!")
