"""SELF-ALIGN stage 1 (`selfalign self-instruct`): the prompts it kept (red-teaming questions by
type and topic, self-instruct instructions), what it dropped by reason, and every generation call
(topics, questions, instructions) as the model wrote it."""

from __future__ import annotations

import json
from typing import Any

from selfalign.store import RunStore, load_items

PROMPTS_FILE = "prompts.jsonl"  # what the command writes into its --out
SUMMARY_FILE = "summary.json"


def record(rec: dict[str, Any], full: bool) -> dict[str, Any]:
    return rec


def extra(store: RunStore) -> dict[str, Any]:
    """The kept prompts and the summary, once the command has written them."""
    prompts_file, summary_file = store.folder / PROMPTS_FILE, store.folder / SUMMARY_FILE
    kept_any = prompts_file.is_file() and prompts_file.read_text("utf-8").strip()  # a stage that kept nothing
    prompts = load_items(prompts_file) if kept_any else []
    summary = json.loads(summary_file.read_text("utf-8")) if summary_file.is_file() else {}
    kept = [{"prompt": item.prompt, **{k: item.extra.get(k) for k in ("source", "type", "topic")}} for item in prompts]
    return {"prompts": kept, "dropped": summary.get("dropped", {}), "red_team": summary.get("red_team", {})}
