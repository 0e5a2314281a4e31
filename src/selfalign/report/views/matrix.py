"""MATRIX: the scene, the event timeline, the consequences, initial and revised answers.

By default a record goes on the page without its raw simulation calls and without the
modulator's memory entries (each repeats an event of the timeline; the memory's summary stays):
together most of a record's size. `full` keeps everything."""

from __future__ import annotations

from typing import Any

from selfalign.store import RunStore


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    if full:
        return rec
    memory = {k: v for k, v in rec.get("memory", {}).items() if k != "entries"}
    return {**{k: v for k, v in rec.items() if k != "calls"}, "memory": memory}


def extra(store: RunStore) -> dict[str, Any]:
    return {}
