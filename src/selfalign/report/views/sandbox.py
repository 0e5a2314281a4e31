"""Sandbox: the grid over rounds, the per-round curves, one agent's turns."""

from __future__ import annotations

from typing import Any

from selfalign.methods.sandbox.simulate import ROUNDS_NS
from selfalign.store import RunStore

# the prompts rebuilt from the question and draft for the data sets; the page shows neither
TEMPLATED = ("critic_request", "realign_request")


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec if full else {k: v for k, v in rec.items() if k not in TEMPLATED}


def extra(store: RunStore) -> dict[str, Any]:
    """The metrics of every finished round (as the simulation stored them)."""
    return {"rounds": [metrics for _, metrics in store.state_items(ROUNDS_NS)]}
