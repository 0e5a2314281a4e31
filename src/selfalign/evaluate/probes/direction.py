"""The refusal direction's statistics (Arditi et al. 2024, "Refusal in language models is
mediated by a single direction"), as small pure functions on activations (numpy arrays, one row
per prompt).

Difference of means at layer l, over the training prompts' last-token residual activations:

    r_l = mean_{harmful} x_l - mean_{harmless} x_l

Separation on held-out prompts: each prompt's projection on the unit direction,
s = x_l . r_l / |r_l|, and the AUROC of s between harmful and harmless prompts,

    AUROC = P(s_harmful > s_harmless) + P(s_harmful = s_harmless) / 2

over all (harmful, harmless) pairs (the Mann-Whitney U statistic over n_h x n_b): 1 when every
harmful prompt projects further along r than every harmless one, 0.5 when the projection says
nothing.

Directional ablation removes the direction from an activation, x' = x - (x . r^) r^ with
r^ = r / |r|; activation addition adds it, x' = x + r.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Layers past this share of the depth are not chosen by default: the paper drops the last 20%,
#: where directions read the next token more than the request.
LAST_USABLE_DEPTH = 0.8


def difference_of_means(harmful: np.ndarray, harmless: np.ndarray) -> np.ndarray:
    """mean of harmful rows minus mean of harmless rows (float64)."""
    return np.asarray(harmful, dtype=np.float64).mean(axis=0) - np.asarray(harmless, dtype=np.float64).mean(axis=0)


def unit(direction: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(direction))
    if norm == 0.0:
        raise ValueError("the direction is zero: the two sets of activations have the same mean")
    return np.asarray(direction, dtype=np.float64) / norm


def projections(activations: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Each row's coordinate along the unit direction."""
    return np.asarray(activations, dtype=np.float64) @ unit(direction)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (module doc)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one score on each side")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def ablate(activations: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """x - (x . r^) r^ for every row: what is left with no component along the direction."""
    r = unit(direction)
    x = np.asarray(activations, dtype=np.float64)
    return x - np.outer(x @ r, r)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(a) @ unit(b))


def choose_layer(aurocs: Sequence[float], gaps: Sequence[float]) -> int:
    """The layer whose direction separates held-out prompts best (highest AUROC, then the largest
    gap between the classes' mean projections), among the first LAST_USABLE_DEPTH of the layers."""
    usable = max(1, int(len(aurocs) * LAST_USABLE_DEPTH))
    return max(range(usable), key=lambda layer: (aurocs[layer], gaps[layer]))


def standardised_gap(positive: Sequence[float], negative: Sequence[float]) -> float:
    """(mean positive - mean negative) / pooled standard deviation (Cohen's d, n - 1 in each
    class's variance); infinite when both classes are constant and differ."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    dof = pos.size + neg.size - 2
    pooled = ((pos.size - 1) * pos.var(ddof=1) + (neg.size - 1) * neg.var(ddof=1)) / dof if dof > 0 else 0.0
    diff = float(pos.mean() - neg.mean())
    return diff / float(np.sqrt(pooled)) if pooled > 0 else (0.0 if diff == 0 else float(np.sign(diff)) * float("inf"))
