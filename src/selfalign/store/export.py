"""Write exported rows in the formats TRL reads: JSONL, Parquet, or a `datasets` folder.

SFT rows are `{"messages": [...]}`; preference rows `{"prompt", "chosen", "rejected"}` with
conversational message lists; Stable Alignment groups `{"prompt", "responses", "ratings"}`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from selfalign.errors import UserError

from .files import atomic_target
from .inputs import Item

Records = Iterable[tuple[Item, dict[str, Any]]]


@dataclass
class Exported:
    """The rows of one export format, and what was left out: reason -> count."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)


RecordRows = Callable[[Item, dict[str, Any]], "list[dict[str, Any]] | str"]


def per_record(rows_of: RecordRows) -> Callable[[Records], Exported]:
    """An export of a whole run from a function of one record, which returns its rows, or the
    reason it gives none (counted)."""

    def export(records: Records) -> Exported:
        out = Exported()
        for item, record in records:
            rows = rows_of(item, record)
            if isinstance(rows, str):
                out.excluded[rows] += 1
            else:
                out.rows.extend(rows)
        return out

    return export


def write_rows(rows: Iterable[dict[str, Any]], to: str | Path) -> int:
    """Write rows by the target's ending: .jsonl, .parquet, or a folder (datasets.save_to_disk).
    Written atomically: a reader sees the old file or the whole new one, never half of one."""
    rows = list(rows)
    target = Path(to)
    suffix = target.suffix.lower()
    if suffix not in (".jsonl", ".parquet", ""):
        raise UserError(f"--to {to}: unknown ending {suffix!r}; use .jsonl, .parquet, or a folder name")
    with atomic_target(target) as tmp:
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        else:
            from datasets import Dataset

            Dataset.from_list(rows).save_to_disk(str(tmp))
    return len(rows)


def sft_row(messages: list[dict[str, str]], answer: str) -> dict[str, Any]:
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def preference_row(messages: list[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
    return {
        "prompt": list(messages),
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def groups_row(messages: list[dict[str, str]], responses: list[str], ratings: list[float]) -> dict[str, Any]:
    return {"prompt": list(messages), "responses": list(responses), "ratings": list(ratings)}
