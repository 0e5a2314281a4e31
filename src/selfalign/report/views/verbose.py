"""SELF-ALIGN stage 4 (`selfalign verbose`): the engraved model's verbose answer to each question,
kept or dropped with the reason. In a `self-align` folder, stage 2's work on the same question
(same prompts file, so the same item id) goes with it: the internal thoughts, the principles they
cite, and the principled answer, shown beside the verbose one with the differences marked."""

from __future__ import annotations

from typing import Any

from selfalign.store import RunStore
from selfalign.store.run_store import STORE_FILE

PRINCIPLED_STAGE = "2-principles"  # the sibling folder `selfalign self-align` writes
STAGE2_SHOWN = ("answer", "thoughts", "principles", "dropped")


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec


def extra(store: RunStore) -> dict[str, Any]:
    stage2 = store.folder.parent / PRINCIPLED_STAGE
    if store.folder.name != "4-verbose" or not (stage2 / STORE_FILE).is_file():
        return {}
    principled = RunStore.open_existing(stage2)
    try:
        answers = {row["id"]: {k: row["record"].get(k) for k in STAGE2_SHOWN} for row in principled.item_rows()
                   if row["record"] and row["record"].get("answer")}
    finally:
        principled.close()
    return {"principled": answers}
