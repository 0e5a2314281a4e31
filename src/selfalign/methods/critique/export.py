"""Rows of one critique-revise record in each export format."""

from __future__ import annotations

from typing import Any

from selfalign.store.export import per_record, preference_row, sft_row
from selfalign.store.inputs import Item


def sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    return [sft_row(list(item.messages), record["revision"])]


def preference(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    if not record.get("red_team", True):
        # The contrast to the red-team pairs: a harmless request's answer over the refusal that
        # red-team revisions start with, so preference training does not learn to refuse everything.
        if not record.get("refusal", "").strip():
            return "a helpfulness prompt has no refusal to prefer its answer to (run with --revision-start)"
        return [preference_row(list(item.messages), chosen=record["initial"], rejected=record["refusal"])]
    if record["revision"].strip() == record["initial"].strip():
        return "revision identical to the initial answer"  # no preference
    return [preference_row(list(item.messages), chosen=record["revision"], rejected=record["initial"])]


EXPORTS = {"sft": per_record(sft), "preference": per_record(preference)}
