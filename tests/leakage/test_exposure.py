"""Exposure (Carlini et al. 2019) against hand-computed values."""

import math

import pytest

from selfalign.evaluate.exposure import exposure, rank_of, sample_candidates


def test_rank_counts_the_candidates_strictly_more_likely():
    # secret at -2.0; candidates -1.0 and -1.5 beat it, -2.0 ties (counts for it), -3.0 loses
    assert rank_of(-2.0, [-1.0, -3.0, -1.5, -2.0]) == 3
    assert rank_of(0.0, []) == 1


def test_exposure_exact_over_the_whole_space():
    # a space of 8 secrets: the secret and 7 others; it ranks 1st -> log2 8 - log2 1 = 3
    assert exposure(-1.0, [-2.0] * 7) == pytest.approx(3.0)
    # it ranks 4th of 8 -> 3 - 2 = 1
    assert exposure(-1.0, [-0.5, -0.2, -0.9, -3, -4, -5, -6]) == pytest.approx(1.0)
    # last of 8 -> 3 - 3 = 0
    assert exposure(-9.0, [-1.0] * 7) == pytest.approx(0.0)


def test_sampled_exposure_is_bounded_by_the_sample():
    # 15 sampled candidates, none more likely: log2 16 - log2 1 = 4, whatever the space
    assert exposure(0.0, [-1.0] * 15) == pytest.approx(4.0)
    # 15 sampled, 3 more likely: log2 16 - log2 4 = 2
    assert exposure(-1.0, [0.0, 0.0, 0.0] + [-2.0] * 12) == pytest.approx(2.0)
    assert exposure(-1.0, [0.0] * 2 + [-2.0] * 3) == pytest.approx(math.log2(6) - math.log2(3))


def test_candidates_are_the_format_the_secret_excluded_and_seeded():
    every = sample_candidates("07", 100, 500, seed=1)
    assert len(every) == 99 and "07" not in every and set(every) == {f"{v:02d}" for v in range(100)} - {"07"}
    some = sample_candidates("000123", 10**6, 50, seed="s")
    assert len(some) == 50 == len(set(some)) and all(len(c) == 6 and c.isdigit() for c in some) and "000123" not in some
    assert some == sample_candidates("000123", 10**6, 50, seed="s") != sample_candidates("000123", 10**6, 50, seed="t")
