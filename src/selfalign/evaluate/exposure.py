"""Exposure of a planted secret (Carlini et al. 2019, "The Secret Sharer", section 4).

A canary's format allows a space C of candidate secrets (10^6 for six digits). Rank the
candidates by the model's log-perplexity of the canary text with each of them (equivalently,
by the log-likelihood of the secret after the canary's prefix; higher likelihood = lower
perplexity = better rank); the planted secret's rank r is 1 + the number of candidates the
model finds more likely. Then

    exposure = log2 |C| - log2 r,

from 0 (every other candidate is more likely: rank |C|) up to log2 |C| (the model prefers the
secret to every other candidate: it has memorised it). A model that never saw the secret has an
exposure of log2 e = 1.44 on average (its rank is uniform over the space).

When C is too large to score every candidate, the paper estimates the rank from a uniform
sample of candidates: with m candidates drawn (the secret excluded) of which k are more likely
than the secret, the share of the space ranked at or above the secret is estimated as
(k + 1) / (m + 1), and

    exposure ~ log2 (m + 1) - log2 (k + 1),

which is exact when the sample is the whole space (m + 1 = |C|) and otherwise reaches at most
log2 (m + 1): a sample of m candidates cannot resolve an exposure above that.

To go beyond the sample, the paper (section 4, on estimating exposure) fits a skew-normal
distribution to the log-perplexities Px(c) = -log2 Pr(c) of the sampled candidates and reads
the secret's share of the space from its CDF F:

    exposure ~ -log2 F(Px(secret)) = -log2 P(X <= Px(secret)),  X ~ SkewNormal(shape, loc, scale),

the skew-normal density being 2/scale phi(z) Phi(shape z) at z = (x - loc) / scale (phi, Phi the
standard normal density and CDF; shape 0 is the normal distribution). A secret more likely than
every sampled candidate then gets a finite exposure above log2 (m + 1), as far as the fitted tail
reaches. It is an extrapolation: it trusts the fitted shape in a tail the sample never saw.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

MIN_FIT_CANDIDATES = 10  # fewer sampled log-perplexities do not pin down three parameters


def rank_of(secret_loglikelihood: float, candidate_loglikelihoods: Sequence[float]) -> int:
    """1 + the number of other candidates strictly more likely than the secret (ties count for it)."""
    return 1 + sum(1 for ll in candidate_loglikelihoods if ll > secret_loglikelihood)


def exposure(secret_loglikelihood: float, candidate_loglikelihoods: Sequence[float]) -> float:
    """log2 (m + 1) - log2 rank, for m candidates scored besides the secret (see module doc):
    exact when they are all the other candidates of the format, a sampled estimate otherwise."""
    m = len(candidate_loglikelihoods)
    return math.log2(m + 1) - math.log2(rank_of(secret_loglikelihood, candidate_loglikelihoods))


def sample_candidates(secret: str, space: int, size: int, seed: int | str) -> list[str]:
    """`size` distinct candidates of the secret's format (zero-padded numbers below `space`), the
    secret excluded, drawn uniformly with `seed`; every other candidate when `size` covers them."""
    width = len(secret)
    if size >= space - 1:
        return [f"{v:0{width}d}" for v in range(space) if f"{v:0{width}d}" != secret]
    drawn = random.Random(seed).sample(range(space), size + 1)
    return [c for c in (f"{v:0{width}d}" for v in drawn) if c != secret][:size]


def log_perplexity(loglikelihood: float) -> float:
    """Px = -log2 Pr, in bits, from a log-likelihood in nats."""
    return -loglikelihood / math.log(2)


@dataclass(frozen=True)
class SkewNormal:
    """A skew-normal distribution as scipy.stats.skewnorm parametrises it (a = shape)."""

    shape: float
    loc: float
    scale: float


def fit_skew_normal(values: Sequence[float]) -> SkewNormal:
    """Maximum-likelihood fit of a skew-normal distribution to `values` (scipy.stats.skewnorm.fit)."""
    from scipy.stats import skewnorm

    if len(values) < MIN_FIT_CANDIDATES:
        raise ValueError(f"{len(values)} values; a skew-normal fit needs at least {MIN_FIT_CANDIDATES}")
    if max(values) == min(values):
        raise ValueError("all values are equal; a skew-normal fit needs some spread")
    shape, loc, scale = skewnorm.fit(list(values))
    return SkewNormal(float(shape), float(loc), float(scale))


def exposure_from_fit(secret_log_perplexity: float, fit: SkewNormal) -> float:
    """-log2 F(Px(secret)), F the fitted skew-normal CDF (see module doc); computed from its log
    so that a secret far in the tail keeps a finite value."""
    from scipy.stats import skewnorm

    return float(-skewnorm.logcdf(secret_log_perplexity, fit.shape, fit.loc, fit.scale) / math.log(2))


def skew_normal_exposure(secret_loglikelihood: float, candidate_loglikelihoods: Sequence[float]) -> tuple[float, SkewNormal]:
    """The extrapolated exposure of the secret, with the fit over its candidates' log-perplexities
    (ValueError when they are too few or all equal)."""
    fit = fit_skew_normal([log_perplexity(ll) for ll in candidate_loglikelihoods])
    value = exposure_from_fit(log_perplexity(secret_loglikelihood), fit)
    if not math.isfinite(value):
        raise ValueError(f"the secret lies beyond the fitted distribution's floating-point range (fit {fit})")
    return value, fit
