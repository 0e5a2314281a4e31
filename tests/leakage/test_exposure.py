"""Exposure (Carlini et al. 2019) against hand-computed values."""

import math

import numpy as np
import pytest

from selfalign.evaluate.exposure import (
    SkewNormal,
    exposure,
    exposure_from_fit,
    fit_skew_normal,
    log_perplexity,
    rank_of,
    sample_candidates,
    skew_normal_exposure,
)


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


def normal_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def test_symmetric_skew_normal_is_the_normal_cdf():
    # shape 0: F(x) = Phi((x - loc) / scale); x = 8, loc 10, scale 2 -> Phi(-1) = 0.158655...
    assert exposure_from_fit(8.0, SkewNormal(0.0, 10.0, 2.0)) == pytest.approx(-math.log2(normal_cdf(-1.0)), rel=1e-9)
    assert exposure_from_fit(8.0, SkewNormal(0.0, 10.0, 2.0)) == pytest.approx(2.6561, abs=1e-4)
    # at the mean, half the candidates are more likely: exactly 1 bit
    assert exposure_from_fit(10.0, SkewNormal(0.0, 10.0, 2.0)) == pytest.approx(1.0)


def test_skew_normal_cdf_with_shape_one():
    # shape +-1: F(z) = Phi(z)^2 and 1 - Phi(-z)^2 (the density 2 phi(z) Phi(z) integrates to Phi(z)^2)
    assert exposure_from_fit(0.0, SkewNormal(1.0, 0.0, 1.0)) == pytest.approx(2.0)  # F = 1/4
    assert exposure_from_fit(0.0, SkewNormal(-1.0, 0.0, 1.0)) == pytest.approx(math.log2(4 / 3))  # F = 3/4
    z = -1.5
    assert exposure_from_fit(3 + 2 * z, SkewNormal(1.0, 3.0, 2.0)) == pytest.approx(-2 * math.log2(normal_cdf(z)), rel=1e-9)


def test_far_tail_stays_finite_beyond_the_sample():
    # 20 standard deviations below a normal's mean: F = 2.754e-89, -log2 F = 294.19 bits
    assert exposure_from_fit(-20.0, SkewNormal(0.0, 0.0, 1.0)) == pytest.approx(294.19, abs=0.01)


def test_fit_recovers_a_known_skew_normal():
    from scipy.stats import skewnorm

    values = skewnorm.rvs(4.0, loc=20.0, scale=3.0, size=20_000, random_state=np.random.default_rng(0))
    fit = fit_skew_normal(values.tolist())
    assert fit.shape == pytest.approx(4.0, rel=0.15)
    assert fit.loc == pytest.approx(20.0, abs=0.1) and fit.scale == pytest.approx(3.0, rel=0.05)


def test_extrapolated_exposure_agrees_with_the_rank_inside_the_sample_and_goes_beyond_it():
    from scipy.stats import skewnorm

    # candidates' log-likelihoods (nats) whose log-perplexities follow a skew-normal
    lps = skewnorm.rvs(3.0, loc=15.0, scale=4.0, size=5_000, random_state=np.random.default_rng(1))
    lls = (-lps * math.log(2)).tolist()
    secret = float(np.quantile(lls, 0.99))  # 1% of the candidates are more likely: about log2 100 = 6.6 bits
    value, _ = skew_normal_exposure(secret, lls)
    # the fitted tail reads that 1% as between 0.8% and 1.2% (0.3 bits either way)
    assert value == pytest.approx(exposure(secret, lls), abs=0.3) and value == pytest.approx(math.log2(100), abs=0.3)
    # more likely than every candidate: the rank caps at log2 (m + 1); the fit goes on
    best = max(lls) + 2.0
    assert exposure(best, lls) == pytest.approx(math.log2(5_001))
    assert skew_normal_exposure(best, lls)[0] > math.log2(5_001)


def test_log_perplexity_is_in_bits():
    assert log_perplexity(-math.log(8)) == pytest.approx(3.0)


def test_no_fit_from_too_few_or_identical_candidates():
    with pytest.raises(ValueError, match="at least 10"):
        skew_normal_exposure(-1.0, [-2.0, -3.0, -4.0])
    with pytest.raises(ValueError, match="equal"):
        skew_normal_exposure(-1.0, [-2.0] * 20)
