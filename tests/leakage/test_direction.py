"""The refusal direction's statistics against hand-computed values."""

import math

import numpy as np
import pytest

from selfalign.evaluate.probes.direction import (
    ablate, auroc, choose_layer, cosine, difference_of_means, projections, standardised_gap, unit,
)


def test_difference_of_means_by_hand():
    harmful = np.array([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    harmless = np.array([[0.0, 1.0], [0.0, 3.0], [3.0, 2.0]])  # mean (1, 2)
    assert difference_of_means(harmful, harmless).tolist() == [1.0, 1.0]


def test_auroc_by_hand():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    # pairs (pos, neg): (1,0) win, (1,2) lose, (3,0) win, (3,2) win -> 3/4
    assert auroc([1, 3], [0, 2]) == 0.75
    # a tie counts one half: (2,2) tie, (2,1) win -> 1.5/2
    assert auroc([2], [2, 1]) == 0.75
    with pytest.raises(ValueError):
        auroc([], [1])


def test_projection_ablation_and_cosine_by_hand():
    r = np.array([3.0, 4.0])  # unit (0.6, 0.8)
    assert unit(r).tolist() == pytest.approx([0.6, 0.8])
    assert projections(np.array([[3.0, 4.0], [4.0, -3.0]]), r).tolist() == pytest.approx([5.0, 0.0])
    # (1, 1) . (0.6, 0.8) = 1.4 -> (1, 1) - 1.4 (0.6, 0.8) = (0.16, -0.12)
    assert ablate(np.array([[1.0, 1.0]]), r).tolist() == [pytest.approx([0.16, -0.12])]
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(1 / math.sqrt(2))


def test_standardised_gap_by_hand():
    # means 2 and 0; variances (n-1) 1 and 1 -> pooled 1 -> d = 2
    assert standardised_gap([1, 2, 3], [-1, 0, 1]) == pytest.approx(2.0)
    assert standardised_gap([1, 1], [0, 0]) == math.inf


def test_layer_choice_skips_the_last_fifth_and_breaks_ties_by_gap():
    aurocs = [0.7, 1.0, 1.0, 0.9, 1.0]  # 5 layers: the first 4 usable
    gaps = [1.0, 2.0, 3.0, 1.0, 9.0]
    assert choose_layer(aurocs, gaps) == 2
