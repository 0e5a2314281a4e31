"""Training losses as small pure functions (torch only; no transformers, no TRL).

The Stable Alignment loss (Liu et al., 2023, arXiv 2305.16960) and the per-sequence mean token
negative log-likelihood it is built on.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def sequence_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token negative log-likelihood of each sequence, prompt and padding excluded.

        L_n = - (1 / |T_n|) * sum_{t in T_n} log p(y_{n,t} | y_{n,<t})

    with `T_n` the positions whose label is not -100. `logits` is (N, T, V), `labels` (N, T),
    unshifted (label t is predicted from position t-1, as in Hugging Face causal LMs).
    A row with no labelled token gets 0, not NaN, so that a NaN never reaches the gradient.
    """
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    token_nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)).float(),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    counts = (shift_labels != IGNORE_INDEX).sum(dim=1)
    return token_nll.sum(dim=1) / counts.clamp(min=1)


def stable_alignment_loss(
    nll: torch.Tensor,
    ratings: torch.Tensor,
    mask: torch.Tensor,
    *,
    margin: float = 1.0,
    rating_scale: float = 7.0,
    ratio: float = 0.2,
    reduce: Literal["mean", "max"] = "mean",
    over_groups: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Stable Alignment loss over a batch of response groups.

    For each group g of K responses with ratings r_i and mean token NLLs L_i (prompt masked):

        b   = argmax_{i valid} r_i                      (ties: the first such i)
        m_i = margin * (r_b - r_i) / rating_scale
        D   = max(0, agg_{i valid, i != b} (L_b - L_i + m_i))     agg = `reduce`: mean (paper) or max
        loss_g = L_b + ratio * D

    A group with a single valid response has no D term: loss_g = L_b (plain SFT). As the rating
    gap shrinks the margin goes to 0 and only lower-rated responses that the model already
    finds *less* likely than the best one by the margin stop contributing.

    Args:
        nll: (G, K) per-response mean token NLL.
        ratings: (G, K) ratings in [1, rating_scale]; entries where `mask` is False are ignored.
        mask: (G, K) bool, True where a response exists (groups may have fewer than K).
        margin, rating_scale, ratio: the paper's m, rating scale (7) and penalty weight (0.2).
        reduce: "mean" (the paper) or "max" over the lower-rated responses, inside the max(0, .).
        over_groups: "mean" over groups (default), "sum", or "none" for the (G,) vector.
    """
    if nll.shape != ratings.shape or nll.shape != mask.shape or nll.dim() != 2:
        raise ValueError(f"nll, ratings and mask must share one (groups, K) shape; got "
                         f"{tuple(nll.shape)}, {tuple(ratings.shape)}, {tuple(mask.shape)}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every group needs at least one valid response (mask row all False)")
    ratings = ratings.to(nll.dtype)

    # Best valid response per group. torch.argmax returns the first maximal index, which gives
    # the documented tie rule; invalid entries are pushed to -inf so they are never chosen.
    masked_ratings = ratings.masked_fill(~mask, float("-inf"))
    best = masked_ratings.argmax(dim=1, keepdim=True)  # (G, 1)
    nll_best = nll.gather(1, best)  # (G, 1)
    rating_best = ratings.gather(1, best)

    # Margin of each response against the best of *its own* group, read at the same index as
    # the response (the reference code read it from a sorted list at an unsorted index).
    margins = margin * (rating_best - ratings) / rating_scale
    diff = nll_best - nll + margins  # (G, K)

    k_index = torch.arange(nll.size(1), device=nll.device).unsqueeze(0)
    others = mask & (k_index != best)
    n_others = others.sum(dim=1)
    # torch.where (not multiplication by the mask) so that garbage in padded slots, even NaN,
    # cannot leak into the value or the gradient.
    if reduce == "mean":
        summed = torch.where(others, diff, torch.zeros_like(diff)).sum(dim=1)
        agg = summed / n_others.clamp(min=1)
    elif reduce == "max":
        agg = torch.where(others, diff, torch.full_like(diff, float("-inf"))).max(dim=1).values
        agg = torch.where(n_others > 0, agg, torch.zeros_like(agg))
    else:
        raise ValueError(f"reduce must be 'mean' or 'max', not {reduce!r}")
    penalty = torch.clamp(agg, min=0.0)
    penalty = torch.where(n_others > 0, penalty, torch.zeros_like(penalty))

    per_group = nll_best.squeeze(1) + ratio * penalty
    if over_groups == "mean":
        return per_group.mean()
    if over_groups == "sum":
        return per_group.sum()
    if over_groups == "none":
        return per_group
    raise ValueError(f"over_groups must be 'mean', 'sum' or 'none', not {over_groups!r}")
