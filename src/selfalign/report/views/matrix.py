"""MATRIX: the scene, the event timeline, the consequences, initial and revised answers.

By default a record goes on the page without its raw simulation calls and without the
modulator's memory entries (each repeats an event of the timeline; the memory's summary stays):
together most of a record's size. `full` keeps everything.

The scene, events, memory and consequences are for an item's detail only (DEFERRED: a large page
loads them when the item is opened); what the list needs of them, its filters, counts and the
situation it searches, is in the record's "brief"."""

from __future__ import annotations

from typing import Any

from selfalign.store import RunStore

DEFERRED = ("scene", "events", "memory", "consequences", "role_memories", "calls")


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    events = rec.get("events", [])
    brief = {
        "events": len(events),
        "rejected": sum(not e.get("feasible", True) for e in events),
        "value_conflicts": sum(bool(e.get("value_conflict")) for e in events),
        "situation": rec.get("scene", {}).get("situation", ""),
    }
    if full:
        return {**rec, "brief": brief}
    memory = {k: v for k, v in rec.get("memory", {}).items() if k != "entries"}
    return {**{k: v for k, v in rec.items() if k != "calls"}, "memory": memory, "brief": brief}


def extra(store: RunStore) -> dict[str, Any]:
    return {}
