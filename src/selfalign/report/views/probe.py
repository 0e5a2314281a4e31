"""Probes (`selfalign probe`): the refusal direction's separation by layer, the refusal rate
with the direction ablated and added, base vs tuned (cosine between the directions, change in
separation), and every step's answers. The figures are results.json's."""

from __future__ import annotations

import json
from typing import Any

from selfalign.evaluate.probes.run import SCHEMA
from selfalign.store import RunStore

RESULTS_FILE = "results.json"
HEAVY = ("directions",)  # a vector per layer: results.json has what the page draws


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec if full else {k: v for k, v in rec.items() if k not in HEAVY}


def extra(store: RunStore) -> dict[str, Any]:
    try:
        results = json.loads((store.folder / RESULTS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {"results": None}
    return {"results": results if isinstance(results, dict) and results.get("schema") == SCHEMA else None}
