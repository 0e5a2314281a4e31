"""The overview of a run for the report: method and config, items by status, failures grouped
by reason, model calls, tokens, time and rates."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from selfalign.store import RunStore


def store_overview(store: RunStore, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The overview of one run store (its item rows read already)."""
    info = store.run_info()
    return overview(info.get("method"), info.get("config", {}), rows, store.created())


def overview(method: str | None, config: dict[str, Any], rows: list[dict[str, Any]], start: float | None) -> dict[str, Any]:
    """Method, config, items by status, failures grouped by reason, calls, tokens, time (from
    `start` to the last item written) and rates, from item rows (RunStore.item_rows)."""
    counts = Counter(row["status"] for row in rows)
    usage: Counter = Counter()
    for row in rows:
        usage.update(row["usage"])
    ends = [row["updated"] for row in rows if row["updated"]]
    seconds = max(ends) - start if start and ends else None
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "method": method,
        "config": config,
        "items": {status: counts[status] for status in ("done", "failed", "pending", "running")},
        "failures": failure_groups([(row["id"], row["error"] or "") for row in rows if row["status"] == "failed"]),
        "usage": dict(usage),
        "seconds": round(seconds, 3) if seconds else None,
        "items_per_minute": round(60 * (counts["done"] + counts["failed"]) / seconds, 2) if seconds else None,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
    }


def failure_groups(failures: list[tuple[str, str]], examples: int = 20) -> list[dict[str, Any]]:
    """Failures grouped by their reason with the numbers in it blanked ("after N attempts"),
    most frequent first: the reason's shape, how many, a full example and some item ids."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for item_id, reason in failures:
        groups.setdefault(re.sub(r"\d+", "N", reason)[:300], []).append((item_id, reason))
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [{"reason": shape, "n": len(members), "example": members[0][1], "ids": [i for i, _ in members[:examples]]}
            for shape, members in ordered]
