"""Input loading: JSONL (`prompt` or `messages`), JSON, CSV (a named column), plain text (one
prompt a line), Parquet, a `datasets` folder or a hub dataset name.

Everything is read and checked before any model call: a bad file stops the run with the file,
the line and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, Row, csv_header, read_rows, read_text
from selfalign.llm.types import ROLES

FIX_JSONL = 'each line must be a JSON object like {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}'


@dataclass(frozen=True)
class Item:
    """One unit of work: a conversation that ends with the user's turn, plus its other fields."""

    id: str
    idx: int
    messages: tuple[dict[str, str], ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message: the instruction the methods work on."""
        return self.messages[-1]["content"]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "idx": self.idx, "messages": list(self.messages), "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Item":
        return cls(data["id"], data["idx"], tuple(data["messages"]), data.get("extra", {}))


def load_items(
    source: str | Path, *, field_name: str | None = None, limit: int | None = None, field_option: str | None = None
) -> list[Item]:
    """Read every input item from `source`, or raise InputError naming the file and line.
    `field_option`: the command's option that names another prompt field (its errors suggest it)."""
    path = Path(source)
    if path.exists():
        rows = _read(path, field_name, field_option)
    elif _looks_like_hub_name(str(source)):
        rows = _read_hub_dataset(str(source))
    else:
        raise InputError(f"{source}: no such file or folder (inputs: .jsonl, .json, .csv, .txt, .parquet, a datasets folder or a hub dataset name)")
    items = [_to_item(row.where, row.value, field_name, n, field_option) for n, row in enumerate(rows)]
    if not items:
        raise InputError(f"{source}: no items; the file is empty (add one prompt per line or one JSON object per line)")
    return items[:limit] if limit else items


def _read(path: Path, field_name: str | None, field_option: str | None) -> list[Row]:
    if path.suffix.lower() == ".csv":
        column = field_name or "prompt"
        header = csv_header(read_text(path))
        if header is None or column not in header:
            fix = f"name the prompt column with {field_option}" if field_option else "call the prompt column 'prompt'"
            raise InputError(f"{path}:1: no column {column!r} in the header {header}; {fix}")
    rows = read_rows(path, FIX_JSONL)
    for row in rows:
        if isinstance(row.value, BrokenRow):
            raise InputError(row.value.problem)
    return rows


def _looks_like_hub_name(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/")) and Path(name).suffix == ""


def _read_hub_dataset(name: str) -> list[Row]:
    from selfalign.llm.hub import load_hub_dataset

    try:
        data = load_hub_dataset(name, split="train")
    except Exception as exc:
        raise InputError(f"{name}: could not load this hub dataset ({exc}); check the name and network access") from exc
    return [Row(f"{name} row {i}", row) for i, row in enumerate(data, 1)]


def _to_item(where: str, row: Any, field_name: str | None, n: int, field_option: str | None) -> Item:
    messages = _messages_of(where, row, field_name, field_option)
    extra = {k: v for k, v in row.items() if k not in ("messages", field_name or "prompt")} if isinstance(row, dict) else {}
    return Item(id=f"{n:06d}", idx=n, messages=messages, extra=_jsonable(extra))


def _messages_of(loc: str, row: Any, field_name: str | None, field_option: str | None) -> tuple[dict[str, str], ...]:
    if isinstance(row, str):
        return ({"role": "user", "content": row},)
    if not isinstance(row, dict):
        raise InputError(f"{loc}: expected an object, got {type(row).__name__}; {FIX_JSONL}")
    key = field_name or "prompt"
    if isinstance(row.get(key), str) and row[key].strip():
        return ({"role": "user", "content": row[key]},)
    if field_name is None and "messages" in row:
        return _check_messages(loc, row["messages"])
    if key in row:
        raise InputError(f"{loc}: field {key!r} is empty or not a string; give it the instruction text")
    other = f", or name the field with {field_option}" if field_option else ""
    raise InputError(f"{loc}: no {key!r} field (fields: {sorted(row)}); {FIX_JSONL}{other}")


def _check_messages(loc: str, messages: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{loc}: 'messages' must be a non-empty list of {{\"role\", \"content\"}} objects")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"{loc}: bad message {m!r}; each needs a role (system, user, assistant) and a string content")
    if messages[-1]["role"] != "user":
        raise InputError(f"{loc}: the last message must be the user's turn (it is {messages[-1]['role']!r})")
    return tuple({"role": m["role"], "content": m["content"]} for m in messages)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
