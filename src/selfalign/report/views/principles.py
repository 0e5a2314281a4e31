"""SELF-ALIGN stage 2 (`selfalign principles`): each question's internal thoughts, the principles
they cite and the answer, kept or dropped with the reason; how often each principle was cited.

The continuation as the model wrote it (`text`) is thoughts and answer again, so it is left out
unless the answer lost its format (then it is all there is) or `full` is asked for."""

from __future__ import annotations

from typing import Any

from selfalign.store import RunStore


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    if full or rec.get("dropped") == "format lost":
        return rec
    return {k: v for k, v in rec.items() if k != "text"}


def extra(store: RunStore) -> dict[str, Any]:
    return {}
