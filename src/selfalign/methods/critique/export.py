"""Rows of one critique-revise record in each export format."""

from __future__ import annotations

from typing import Any

from selfalign.store.export import per_record, preference_row, sft_row
from selfalign.store.inputs import Item


def sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    return [sft_row(list(item.messages), record["revision"])]


def preference(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    if record["revision"].strip() == record["initial"].strip():
        return "revision identical to the initial answer"  # no preference
    return [preference_row(list(item.messages), chosen=record["revision"], rejected=record["initial"])]


EXPORTS = {"sft": per_record(sft), "preference": per_record(preference)}
