"""Critique-revise: principle, answer, critique and revision; how often each principle was used."""

from __future__ import annotations

from typing import Any

from selfalign.store import RunStore


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec


def extra(store: RunStore) -> dict[str, Any]:
    return {}
