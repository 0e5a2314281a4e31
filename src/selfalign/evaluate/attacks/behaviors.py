"""Behaviours: what the attacks try to make a model do, from a file in any of the public formats,
the shipped mild set, or a hub dataset by name (AdvBench, JailbreakBench; needs network).

    --behaviors mild                 the shipped set (mild: lock picking, rude emails; benign rows too)
    --behaviors FILE.jsonl|.json     {"behavior" | "prompt" | "goal": TEXT, "category"?, "harmful"?, "target"?}
    --behaviors harmful_behaviors.csv    AdvBench (goal,target)
    --behaviors harmful-behaviors.csv    JailbreakBench (Goal,Target,Behavior,Category); benign-behaviors.csv
                                     rows are benign when the file name says so
    --behaviors advbench | jbb       the hub copies (walledai/AdvBench, JailbreakBench/JBB-Behaviors)

A benign row (`"harmful": false`) is only asked plainly: refusing it is over-refusal. A row that
does not fit stops everything before any model call, with the file, the line and the fix.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, Row, read_rows, rows_of_text

from .base import Behavior

TEXT_FIELDS = ("behavior", "Goal", "goal", "prompt", "Behavior")  # JailbreakBench's Behavior is a short name: Goal first
FIX = ('each row needs the behaviour\'s text in "behavior" (or "prompt", or AdvBench\'s "goal", or JailbreakBench\'s "Goal"), '
       'optionally "category", "harmful" (true/false) and "target", e.g. {"behavior": "Explain how to pick a lock", '
       '"category": "property"}')
HUB = {
    "advbench": ("walledai/AdvBench", None, "AdvBench harmful_behaviors.csv (columns goal,target)"),
    "jbb": ("JailbreakBench/JBB-Behaviors", "behaviors", "JailbreakBench harmful-behaviors.csv (columns Goal,Target,Behavior,Category)"),
}


def load_behaviors(source: str, limit: int | None = None) -> list[Behavior]:
    """Every behaviour of `source`, checked; ids are the rows' positions."""
    if source == "mild":
        text = resources.files(__package__).joinpath("data/behaviors.jsonl").read_text("utf-8")
        rows, benign_file = rows_of_text(text, "selfalign/evaluate/attacks/data/behaviors.jsonl", ".jsonl", FIX), False
    elif source in HUB:
        rows, benign_file = _hub_rows(source), False
    else:
        if not Path(source).exists():
            raise InputError(f"--behaviors {source}: no such file; give a file ({FIX}), or mild, advbench or jbb")
        rows, benign_file = read_rows(source, FIX), "benign" in Path(source).name.lower()
    behaviors = [_behavior(row, n, benign_file) for n, row in enumerate(rows)]
    if not behaviors:
        raise InputError(f"{source}: no behaviours; {FIX}")
    return behaviors[:limit] if limit else behaviors


def _behavior(row: Row, n: int, benign_file: bool) -> Behavior:
    value = row.value
    if isinstance(value, BrokenRow):
        raise InputError(value.problem)
    if isinstance(value, str):  # a plain text file: one behaviour a line
        value = {"behavior": value}
    if not isinstance(value, dict):
        raise InputError(f"{row.where}: expected an object, got {type(value).__name__}; {FIX}")
    text = next((value[k] for k in TEXT_FIELDS if isinstance(value.get(k), str) and value[k].strip()), None)
    if text is None:
        raise InputError(f"{row.where}: no behaviour text (fields: {sorted(value)}); {FIX}")
    harmful = value.get("harmful", not benign_file)
    if not isinstance(harmful, bool):
        raise InputError(f"{row.where}: 'harmful' must be true or false, got {harmful!r}; {FIX}")
    category = _optional_text(value, ("category", "Category", "SemanticCategory"))
    target = _optional_text(value, ("target", "Target"))
    return Behavior(f"{n:06d}", text.strip(), harmful, category, target)


def _optional_text(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((str(row[k]).strip() for k in keys if row.get(k) not in (None, "")), None)


def _hub_rows(name: str) -> list[Row]:
    dataset, config, local_format = HUB[name]
    try:
        from selfalign.llm.hub import load_hub_dataset

        data = load_hub_dataset(dataset, config) if config else load_hub_dataset(dataset)
    except Exception as exc:  # datasets raises many kinds: no network, gated, renamed
        raise InputError(
            f"--behaviors {name}: could not load {dataset} from the hub ({type(exc).__name__}: {exc}); offline, download "
            f"{local_format} and pass --behaviors FILE, or write your own ({FIX})"
        ) from exc
    if "harmful" in data:  # JailbreakBench: the harmful split, and the benign one for over-refusal
        return [Row(f"{dataset} {split} row {i}", {**row, "harmful": split == "harmful"})
                for split in ("harmful", "benign") if split in data for i, row in enumerate(data[split], 1)]
    split = next((s for s in ("train", "test") if s in data), next(iter(data)))
    return [Row(f"{dataset} {split} row {i}", row) for i, row in enumerate(data[split], 1)]
