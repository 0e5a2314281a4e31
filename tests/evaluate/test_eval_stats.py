"""Statistics against values worked out by hand."""

import numpy as np
import pytest

from selfalign.evaluate.stats import (
    cluster_bootstrap,
    cohen_kappa,
    corrected_rate,
    pass_at_k,
    reduce_samples,
    rogan_gladen,
    wilson_interval,
    _resampled_means,
    bootstrap_mean,
    consistent,
    paired_bootstrap_difference,
    pairwise_outcome,
    win_rate,
)


@pytest.mark.parametrize(
    "first, second, outcome",
    [
        ("A", "B", "win"),  # candidate named in both orders
        ("B", "A", "lose"),  # baseline named in both orders
        ("A", "A", "tie"),  # the judge always picks the first answer: position bias, a tie
        ("B", "B", "tie"),  # always the second
        ("tie", "B", "tie"),
        ("A", "tie", "tie"),
        ("tie", "tie", "tie"),
    ],
)
def test_pairwise_outcome_is_mt_bench_rule(first, second, outcome):
    assert pairwise_outcome(first, second) == outcome


def test_consistency_means_the_same_answer_named_in_both_orders():
    assert consistent("A", "B") and consistent("B", "A") and consistent("tie", "tie")
    assert not consistent("A", "A") and not consistent("B", "B") and not consistent("A", "tie")


def test_win_rate_counts_ties_as_half():
    # 2 wins, 1 tie, 1 loss: (2 + 1/2) / 4 = 0.625
    assert win_rate(["win", "tie", "lose", "win"]) == 0.625
    assert win_rate(["tie", "tie"]) == 0.5
    with pytest.raises(ValueError):
        win_rate([])


def test_bootstrap_of_constant_values_is_a_point():
    est = bootstrap_mean([0.7] * 12)
    assert (est.value, est.low, est.high, est.n) == pytest.approx((0.7, 0.7, 0.7, 12))


def test_bootstrap_of_two_values_spans_both():
    # Means of draws of 2 from {0, 1}: 0 with probability 1/4, 0.5 with 1/2, 1 with 1/4, so the
    # 2.5th percentile is 0 and the 97.5th is 1.
    est = bootstrap_mean([0.0, 1.0])
    assert (est.value, est.low, est.high) == (0.5, 0.0, 1.0)


def test_bootstrap_matches_the_normal_approximation_for_a_fair_coin():
    # 50 zeros and 50 ones: mean 0.5, standard error sqrt(0.25 / 100) = 0.05, so the 95%
    # interval is about 0.5 -/+ 1.96 * 0.05 = [0.402, 0.598]; draws move by one item (0.01).
    est = bootstrap_mean([0.0] * 50 + [1.0] * 50, seed=3)
    assert est.value == 0.5
    assert est.low == pytest.approx(0.402, abs=0.015)
    assert est.high == pytest.approx(0.598, abs=0.015)


def test_bootstrap_is_seeded():
    values = np.random.default_rng(0).random(30)
    assert bootstrap_mean(values, seed=1) == bootstrap_mean(values, seed=1)
    assert bootstrap_mean(values, seed=1) != bootstrap_mean(values, seed=2)
    # drawn in chunks (to bound memory) or in one block: the same draws
    chunked = _resampled_means(values, 2500, seed=1, chunk=1000)
    assert np.array_equal(chunked, _resampled_means(values, 2500, seed=1, chunk=2500))


def test_bootstrap_resamples_follow_an_explicit_loop():
    """The vectorised draw is the textbook loop: B draws of n indices, the mean of each."""
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.5])
    rng = np.random.default_rng(7)
    means = [values[rng.integers(0, 6, size=6)].mean() for _ in range(1000)]
    expected = np.quantile(means, [0.025, 0.975])
    est = bootstrap_mean(values, resamples=1000, seed=7)
    assert (est.low, est.high) == pytest.approx(tuple(expected))


def test_paired_difference_sees_what_unpaired_intervals_hide():
    # b is a plus a constant 0.1: the per-prompt difference is exactly -0.1 on every prompt, so
    # the paired interval is the point -0.1, while each model's own interval is wide.
    a = np.linspace(0, 1, 40)
    b = a + 0.1
    diff = paired_bootstrap_difference(a, b)
    assert (diff.value, diff.low, diff.high) == pytest.approx((-0.1, -0.1, -0.1))
    single = bootstrap_mean(a)
    assert single.high - single.low > 0.1
    with pytest.raises(ValueError):
        paired_bootstrap_difference([1.0], [1.0, 2.0])


# -- epochs: reducers and the cluster bootstrap ---------------------------------------------


def test_reducers_by_hand():
    samples = [1.0, 0.0, 0.0, 1.0, 0.0]
    assert reduce_samples(samples, "mean") == 0.4
    assert reduce_samples(samples, "max") == 1.0
    assert reduce_samples(samples, "majority") == 0.0  # three zeros, two ones
    assert reduce_samples([1.0, 0.0], "majority") == 0.5  # a tie: the mean of the tied values
    assert reduce_samples([7.0, 7.0, 3.0], "majority") == 7.0
    # pass@2 with n=5, c=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert reduce_samples(samples, "pass@2") == pytest.approx(0.7)
    assert reduce_samples(samples, "pass@1") == pytest.approx(0.4)  # pass@1 is the mean
    assert pass_at_k(3, 0, 2) == 0.0 and pass_at_k(3, 2, 2) == 1.0  # n - c < k: always a success
    with pytest.raises(ValueError):
        reduce_samples(samples, "pass@6")
    with pytest.raises(ValueError):
        reduce_samples(samples, "median")


def test_cluster_bootstrap_resamples_prompts_not_samples():
    # Two prompts, each answered three times: all successes, all failures. Reduced by the mean
    # they are 1 and 0; draws of two prompts give means 0 (1/4), 0.5 (1/2), 1 (1/4), so the 95%
    # interval is [0, 1]. Treating the six samples as independent would give a narrower interval.
    clusters = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    est = cluster_bootstrap(clusters)
    assert (est.value, est.low, est.high, est.n) == (0.5, 0.0, 1.0, 2)
    naive = bootstrap_mean([v for c in clusters for v in c])
    assert naive.high - naive.low < est.high - est.low
    # reduced by max, then the ordinary bootstrap of the per-prompt values
    assert cluster_bootstrap([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0]], "max").value == pytest.approx(2 / 3)


# -- judge validation -------------------------------------------------------------------------


def test_cohen_kappa_by_hand():
    # p_o = 4/6; each rater says 1 half the time, so p_e = 0.5*0.5 + 0.5*0.5 = 0.5; kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert cohen_kappa([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]) == pytest.approx(1 / 3)
    assert cohen_kappa(["A", "B", "tie"], ["A", "B", "tie"]) == 1.0
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert cohen_kappa([1, 1], [1, 1]) == 1.0


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.71669,
    # half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10) = 0.22663
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    low, high = wilson_interval(0, 5)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.43448, abs=1e-5)


def test_rogan_gladen_by_hand():
    # a judge that says yes to 90% of true positives and 20% of true negatives reads 0.41 where
    # the true rate is 0.3: 0.9*0.3 + 0.2*0.7 = 0.41; corrected (0.41 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.3
    assert rogan_gladen(0.41, 0.9, 0.8) == pytest.approx(0.3)
    assert rogan_gladen(0.05, 0.9, 0.8) == 0.0  # clipped
    with pytest.raises(ValueError, match="no better than chance"):
        rogan_gladen(0.5, 0.5, 0.5)


def test_corrected_rate_of_a_perfect_judge_is_the_raw_rate():
    labels = [True, False, True, False]
    est = corrected_rate([0.0, 1.0, 1.0, 0.0], labels, labels, resamples=2000)
    assert est.value == 0.5 and est.n == 4 and est.low == 0.0 and est.high == 1.0


def test_corrected_rate_by_hand_and_where_it_is_undefined():
    # labelled rows: 4 positives, the judge finds 3 (TPR 0.75); 4 negatives, it calls 1 positive (TNR 0.75);
    # raw rate 0.5 -> (0.5 + 0.75 - 1) / (0.75 + 0.75 - 1) = 0.5; raw 0.4 -> 0.15 / 0.5 = 0.3
    labels = [True] * 4 + [False] * 4
    predictions = [True, True, True, False, True, False, False, False]
    assert corrected_rate([1.0, 0.0], labels, predictions, resamples=500).value == pytest.approx(0.5)
    assert corrected_rate([1.0, 1.0, 0.0, 0.0, 0.0], labels, predictions, resamples=500).value == pytest.approx(0.3)
    assert corrected_rate([1.0], [True, True], [True, True]) is None  # no negative row: TNR unknown
    assert corrected_rate([1.0], [True, False], [False, True]) is None  # worse than chance
