"""Attacks (`selfalign attack`): attack success rates per attack, variant, model and harm
category with their intervals beside the no-attack baseline, over-refusal, and every attempt
with its prompt, answer and the scorers' verdicts. The figures are results.json's."""

from __future__ import annotations

import json
from typing import Any

from selfalign.evaluate.attacks.results import SCHEMA
from selfalign.store import RunStore

RESULTS_FILE = "results.json"


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec


def extra(store: RunStore) -> dict[str, Any]:
    """results.json's figures, when the run has written them and they are an attack's."""
    path = store.folder / RESULTS_FILE
    try:
        results = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {"results": None}
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        return {"results": None}
    return {"results": {k: v for k, v in results.items() if k not in ("successes", "failed_items")}}
