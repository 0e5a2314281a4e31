"""Input loading: JSONL (`prompt` or `messages`), JSON, CSV (a named column), plain text (one
prompt a line), Parquet, a `datasets` folder or a hub dataset name.

Everything is read and checked before any model call: a bad file stops the run with the file,
the line and the fix. `check_inputs` does it in one pass that keeps no item (a 1,000,000-row
JSONL file in a few seconds, in constant memory), and its `Inputs` reads the file again, item by
item, as the run adds them to its store; `load_items` keeps them all, for inputs of a size to
hold. An item's id is its position among the rows (`000000`, `000001`, ...), so a run resumed
from the same file finds its items again.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, Row, csv_header, iter_rows
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


@dataclass(frozen=True)
class Inputs:
    """Inputs that `check_inputs` found good: iterating reads them again from their source, one
    item at a time (the first `limit`); `len` is their number."""

    source: str | Path
    field_name: str | None
    limit: int | None
    field_option: str | None
    count: int

    def __iter__(self) -> Iterator[Item]:
        items = _items(_rows(self.source, self.field_name, self.field_option), self.field_name, self.field_option)
        return itertools.islice(items, self.limit) if self.limit else items

    def __len__(self) -> int:
        return min(self.count, self.limit) if self.limit else self.count


def check_inputs(
    source: str | Path, *, field_name: str | None = None, limit: int | None = None, field_option: str | None = None
) -> Inputs:
    """Read and check every input item of `source` once, keeping none, or raise InputError naming
    the file and line (every row is checked, also past `limit`).
    `field_option`: the command's option that names another prompt field (its errors suggest it)."""
    count = 0
    for row in _rows(source, field_name, field_option):
        _messages_of(row.where, row.value, field_name, field_option)
        count += 1
    if not count:
        raise _no_items(source)
    return Inputs(source, field_name, limit, field_option, count)


def load_items(
    source: str | Path, *, field_name: str | None = None, limit: int | None = None, field_option: str | None = None
) -> list[Item]:
    """Every input item of `source` (the first `limit`), checked as `check_inputs` does."""
    items = list(_items(_rows(source, field_name, field_option), field_name, field_option))
    if not items:
        raise _no_items(source)
    return items[:limit] if limit else items


def _no_items(source: str | Path) -> InputError:
    return InputError(f"{source}: no items; the file is empty (add one prompt per line or one JSON object per line)")


def _rows(source: str | Path, field_name: str | None, field_option: str | None) -> Iterator[Row]:
    path = Path(source)
    if path.exists():
        return _read(path, field_name, field_option)
    if _looks_like_hub_name(str(source)):
        return iter(_read_hub_dataset(str(source)))
    raise InputError(f"{source}: no such file or folder (inputs: .jsonl, .json, .csv, .txt, .parquet, a datasets folder or a hub dataset name)")


def _items(rows: Iterable[Row], field_name: str | None, field_option: str | None) -> Iterator[Item]:
    for n, (where, value) in enumerate(rows):
        yield _to_item(where, value, field_name, n, field_option)


def _read(path: Path, field_name: str | None, field_option: str | None) -> Iterator[Row]:
    if path.suffix.lower() == ".csv":
        column = field_name or "prompt"
        header = csv_header(path)
        if header is None or column not in header:
            fix = f"name the prompt column with {field_option}" if field_option else "call the prompt column 'prompt'"
            raise InputError(f"{path}:1: no column {column!r} in the header {header}; {fix}")
    return iter_rows(path, FIX_JSONL)


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
    return Item(id=f"{n:06d}", idx=n, messages=messages, extra=_jsonable(extra) if extra else {})


def _messages_of(loc: str, row: Any, field_name: str | None, field_option: str | None) -> tuple[dict[str, str], ...]:
    if isinstance(row, BrokenRow):
        raise InputError(row.problem)
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
