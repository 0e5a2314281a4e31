"""Rows of one MATRIX record in each export format. Failed items have no record and are never
exported (the export command counts them)."""

from __future__ import annotations

from typing import Any

from selfalign.store.export import per_record, preference_row, sft_row
from selfalign.store.inputs import Item


def sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The instruction and the revised answer."""
    return [sft_row(list(item.messages), record["revised"])]


def preference(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    """chosen = revised, rejected = initial; an unchanged answer is no preference."""
    if record["revised"].strip() == record["initial"].strip():
        return "revised answer identical to the initial one"
    return [preference_row(list(item.messages), chosen=record["revised"], rejected=record["initial"])]


def simulation(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every simulation call (scene building, ego actions, reactions, modulator verdicts, memory
    and consequence summaries) as an SFT conversation: what was asked, what the model answered.
    The initial answer is left out on purpose: it is the behaviour being corrected."""
    return [sft_row(call["messages"], call["answer"]) for call in record["calls"]]


EXPORTS = {"sft": per_record(sft), "preference": per_record(preference), "simulation": per_record(simulation)}
