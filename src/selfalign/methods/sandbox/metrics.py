"""Per-round metrics of a simulation: what the observers saw before and after revision."""

from __future__ import annotations

from statistics import fmean
from typing import Any, Iterable

from .record import SandboxRecord


def round_metrics(round_: int, agents: int, records: Iterable[SandboxRecord], failed: int) -> dict[str, Any]:
    """Means over the turns whose observer ratings are usable; `improved` is the share of those
    drafts whose revision the observer rated higher on alignment."""
    records = list(records)
    both = [r for r in records if r.observed_draft.ok and r.observed_revision.ok]
    ratings = [f.rating for r in records for f in r.feedback if f.ok]

    def mean(values: list[float]) -> float | None:
        return round(fmean(values), 4) if values else None

    return {
        "round": round_,
        "agents": agents,
        "done": len(records),
        "failed": failed,
        "observed": len(both),
        "alignment_draft": mean([r.observed_draft.alignment for r in both]),
        "alignment_revision": mean([r.observed_revision.alignment for r in both]),
        "engagement_draft": mean([r.observed_draft.engagement for r in both]),
        "engagement_revision": mean([r.observed_revision.engagement for r in both]),
        "improved": mean([float(r.observed_revision.alignment > r.observed_draft.alignment) for r in both]),
        "neighbour_rating": mean(ratings),
        "failed_ratings": sum(1 for r in records for f in r.feedback if not f.ok),
        "failed_observations": sum((not r.observed_draft.ok) + (not r.observed_revision.ok) for r in records),
    }


def format_metrics(m: dict[str, Any], rounds: int) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    improved = "n/a" if m["improved"] is None else f"{100 * m['improved']:.0f}%"
    return (
        f"round {m['round']}/{rounds}: alignment {f(m['alignment_draft'])} -> {f(m['alignment_revision'])}, "
        f"engagement {f(m['engagement_draft'])} -> {f(m['engagement_revision'])}, "
        f"{improved} of {m['observed']} drafts improved; neighbour rating {f(m['neighbour_rating'])}; "
        f"{m['done']} agents done, {m['failed']} failed, {m['failed_ratings']} failed ratings, "
        f"{m['failed_observations']} failed observations"
    )
