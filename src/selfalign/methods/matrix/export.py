"""Rows of one MATRIX record in each export format. Failed items have no record and are never
exported (the export command counts them)."""

from __future__ import annotations

from typing import Any

from selfalign.llm.structured import schema_instruction
from selfalign.store.export import per_record, preference_row, sft_row
from selfalign.store.inputs import Item


def sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The instruction and the revised answer (the initial answer itself when no harm was found)."""
    return [sft_row(list(item.messages), record["revised"])]


def preference(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    """chosen = revised, rejected = initial. No pair rejects a good answer: when the simulation
    found no harm the item is skipped, and so is an unchanged answer."""
    if not record.get("harm_found", True):
        return "no harm found: the initial answer is kept, not rejected"
    if record["revised"].strip() == record["initial"].strip():
        return "revised answer identical to the initial one"
    return [preference_row(list(item.messages), chosen=record["revised"], rejected=record["initial"])]


def simulation(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every simulation call (scene building, ego retries, reactions, modulator verdicts, memory
    and consequence summaries) as an SFT conversation: what was asked, what the model answered.
    A prompt that wanted JSON says so, in the words the model was given, so the exported answer
    is in the format its prompt asks for. The initial answer is left out on purpose: it is the
    behaviour being corrected."""
    return [sft_row(_asked(call), call["answer"]) for call in record["calls"]]


def _asked(call: dict[str, Any]) -> list[dict[str, str]]:
    messages = [dict(m) for m in call["messages"]]
    if call.get("json_schema"):
        messages[-1]["content"] += schema_instruction(call["json_schema"])
    return messages


EXPORTS = {"sft": per_record(sft), "preference": per_record(preference), "simulation": per_record(simulation)}
