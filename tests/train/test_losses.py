"""Stable Alignment loss against values computed by hand (rating scale 7, margin 1, ratio 0.2)."""

from __future__ import annotations

import math

import pytest
import torch

from selfalign.train.losses import sequence_mean_nll, stable_alignment_loss

NAN = float("nan")


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def m(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_three_responses_mean():
    # b = 1 (rating 7), L_b = 1.0
    # m_0 = (7-4)/7 = 0.428571, m_2 = (7-1)/7 = 0.857143
    # i=0: 1.0 - 1.2 + 0.428571 = 0.228571 ; i=2: 1.0 - 1.5 + 0.857143 = 0.357143
    # D = max(0, mean) = 0.292857 ; loss = 1.0 + 0.2 * 0.292857 = 1.0585714
    # (the reference code read m_0 from the sorted list at the unsorted index: m_0 = 0, 1.0157)
    loss = stable_alignment_loss(t([[1.2, 1.0, 1.5]]), t([[4, 7, 1]]), m([[1, 1, 1]]))
    assert loss.item() == pytest.approx(1.0585714, abs=1e-6)


def test_three_responses_max():
    # max(0.228571, 0.357143) = 0.357143 ; loss = 1.0 + 0.2 * 0.357143 = 1.0714286
    loss = stable_alignment_loss(t([[1.2, 1.0, 1.5]]), t([[4, 7, 1]]), m([[1, 1, 1]]), reduce="max")
    assert loss.item() == pytest.approx(1.0714286, abs=1e-6)


def test_four_responses_best_not_first():
    # b = 0 (rating 6), L_b = 1.0; margins 3/7, 1/7, 5/7
    # 1.0-1.1+0.428571 = 0.328571 ; 1.0-0.9+0.142857 = 0.242857 ; 1.0-1.4+0.714286 = 0.314286
    # mean = 0.885714 / 3 = 0.295238 ; loss = 1.0 + 0.2 * 0.295238 = 1.0590476
    loss = stable_alignment_loss(t([[1.0, 1.1, 0.9, 1.4]]), t([[6, 3, 5, 1]]), m([[1, 1, 1, 1]]))
    assert loss.item() == pytest.approx(1.0590476, abs=1e-6)


def test_penalty_clamped_at_zero():
    # 1.0-2.0+0.428571 = -0.571429 ; 1.0-3.0+0.857143 = -1.142857 ; mean < 0 -> D = 0 ; loss = L_b
    loss = stable_alignment_loss(t([[2.0, 1.0, 3.0]]), t([[4, 7, 1]]), m([[1, 1, 1]]))
    assert loss.item() == pytest.approx(1.0, abs=1e-9)


def test_ties_take_the_first_best():
    # ratings [7, 7, 3]: b = 0, L_b = 2.0 ; m_1 = 0, m_2 = 4/7 = 0.571429
    # 2.0-1.0+0 = 1.0 ; 2.0-1.5+0.571429 = 1.071429 ; mean = 1.0357143
    # loss = 2.0 + 0.2 * 1.0357143 = 2.2071429   (b = 1 would give 1.0 + 0.2*max(0,...) instead)
    loss = stable_alignment_loss(t([[2.0, 1.0, 1.5]]), t([[7, 7, 3]]), m([[1, 1, 1]]))
    assert loss.item() == pytest.approx(2.2071429, abs=1e-6)


def test_masks_and_single_response_groups():
    # group A as in test_three_responses_mean: 1.0585714
    # group B: slot 2 is padding holding NaN and a placeholder rating 8 that must be ignored;
    #   b = 1 (rating 5), L_b = 0.8 ; m_0 = 3/7 ; 0.8-0.5+0.428571 = 0.728571
    #   loss_B = 0.8 + 0.2 * 0.728571 = 0.9457143
    # group C: one valid response -> loss_C = L_b = 0.7
    # mean = (1.0585714 + 0.9457143 + 0.7) / 3 = 0.9014286
    nll = t([[1.2, 1.0, 1.5], [0.5, 0.8, NAN], [0.7, NAN, NAN]]).requires_grad_()
    ratings = t([[4, 7, 1], [2, 5, 8], [3, -1, 8]])
    mask = m([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    per_group = stable_alignment_loss(nll, ratings, mask, over_groups="none")
    assert per_group.tolist() == pytest.approx([1.0585714, 0.9457143, 0.7], abs=1e-6)
    loss = stable_alignment_loss(nll, ratings, mask)
    assert loss.item() == pytest.approx(0.9014286, abs=1e-6)
    assert stable_alignment_loss(nll, ratings, mask, over_groups="sum").item() == pytest.approx(2.7042857, abs=1e-6)
    loss.backward()
    assert not torch.isnan(nll.grad).any()
    assert nll.grad[1, 2].item() == 0.0 and nll.grad[2, 1].item() == 0.0


def test_gradients_mean():
    # loss = L_b + 0.2 * ((L_b - L_0 + m_0) + (L_b - L_2 + m_2)) / 2  (penalty active)
    # dL_b = 1 + 0.2 = 1.2 ; dL_0 = dL_2 = -0.2 / 2 = -0.1
    nll = t([[1.2, 1.0, 1.5]]).requires_grad_()
    stable_alignment_loss(nll, t([[4, 7, 1]]), m([[1, 1, 1]])).backward()
    assert nll.grad.flatten().tolist() == pytest.approx([-0.1, 1.2, -0.1])


def test_gradients_max_and_inactive():
    nll = t([[1.2, 1.0, 1.5]]).requires_grad_()
    stable_alignment_loss(nll, t([[4, 7, 1]]), m([[1, 1, 1]]), reduce="max").backward()
    assert nll.grad.flatten().tolist() == pytest.approx([0.0, 1.2, -0.2])  # only the argmax term
    nll = t([[2.0, 1.0, 3.0]]).requires_grad_()
    stable_alignment_loss(nll, t([[4, 7, 1]]), m([[1, 1, 1]])).backward()
    assert nll.grad.flatten().tolist() == pytest.approx([0.0, 1.0, 0.0])  # clamped: plain SFT on b


def test_two_groups_mean_gradient_is_halved():
    nll = t([[1.2, 1.0, 1.5], [0.7, 0.0, 0.0]]).requires_grad_()
    stable_alignment_loss(nll, t([[4, 7, 1], [5, 1, 1]]), m([[1, 1, 1], [1, 0, 0]])).backward()
    assert nll.grad.flatten().tolist() == pytest.approx([-0.05, 0.6, -0.05, 0.5, 0.0, 0.0])


def test_zero_margin_and_custom_knobs():
    # margin 0, ratio 0.5, ratings on a 10 scale: 1.0-1.2 = -0.2 ; 1.0-0.6 = 0.4 ; mean 0.1
    # loss = 1.0 + 0.5 * 0.1 = 1.05
    loss = stable_alignment_loss(t([[1.2, 1.0, 0.6]]), t([[2, 9, 1]]), m([[1, 1, 1]]),
                                 margin=0.0, rating_scale=10.0, ratio=0.5)
    assert loss.item() == pytest.approx(1.05, abs=1e-9)


def test_bad_shapes_and_empty_groups():
    with pytest.raises(ValueError):
        stable_alignment_loss(t([[1.0, 2.0]]), t([[1.0]]), m([[1, 1]]))
    with pytest.raises(ValueError, match="at least one valid"):
        stable_alignment_loss(t([[1.0, 2.0]]), t([[1, 2]]), m([[0, 0]]))


def test_sequence_mean_nll_by_hand():
    # vocab 2, logits equal -> every token has NLL log 2; row 0 labels 2 tokens, row 1 none
    logits = torch.zeros(2, 3, 2)
    labels = torch.tensor([[-100, 1, 0], [-100, -100, -100]])
    out = sequence_mean_nll(logits, labels)
    assert out.tolist() == pytest.approx([math.log(2), 0.0])
    # one confident token: logits (0, ln 3) -> p(1) = 3/4, NLL = ln(4/3); mean with ln 2
    logits = torch.zeros(1, 3, 2)
    logits[0, 0, 1] = math.log(3)
    out = sequence_mean_nll(logits, torch.tensor([[-100, 1, 1]]))
    assert out.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)
