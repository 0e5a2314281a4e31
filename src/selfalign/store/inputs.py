"""Input loading: JSONL (`prompt` or `messages`), JSON, CSV (a named column), plain text (one
prompt a line), Parquet, a `datasets` folder or a hub dataset name.

Everything is read and checked before any model call: a bad file stops the run with the file,
the line and the fix.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfalign.errors import InputError

ROLES = {"system", "user", "assistant"}
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


def load_items(source: str | Path, *, field_name: str | None = None, limit: int | None = None) -> list[Item]:
    """Read every input item from `source`, or raise InputError naming the file and line."""
    path = Path(source)
    if path.is_dir():
        rows = _read_dataset_folder(path)
    elif path.is_file():
        rows = _read_file(path, field_name)
    elif _looks_like_hub_name(str(source)):
        rows = _read_hub_dataset(str(source))
    else:
        raise InputError(f"{source}: no such file or folder (inputs: .jsonl, .json, .csv, .txt, .parquet, a datasets folder or a hub dataset name)")
    items = [_to_item(path, where, row, field_name, n) for n, (where, row) in enumerate(rows)]
    if not items:
        raise InputError(f"{source}: no items; the file is empty (add one prompt per line or one JSON object per line)")
    return items[:limit] if limit else items


def _read_file(path: Path, field_name: str | None) -> list[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(f"row {i + 1}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
    text = _read_utf8(path)
    if suffix == ".jsonl":
        return [(f"line {n}", _parse_json_line(path, n, line)) for n, line in _nonblank_lines(text)]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: broken JSON ({exc.msg}); the file must hold a JSON list of objects") from exc
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of objects; for one object a line, name the file .jsonl")
        return [(f"element {i + 1}", row) for i, row in enumerate(data)]
    if suffix == ".csv":
        return _read_csv(path, text, field_name or "prompt")
    return [(f"line {n}", line.strip()) for n, line in _nonblank_lines(text)]


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte {data[exc.start]:#x}); re-save the file as UTF-8") from exc


def _nonblank_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_json_line(path: Path, lineno: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{lineno}: broken JSON ({exc.msg} at column {exc.colno}); {FIX_JSONL}") from exc


def _read_csv(path: Path, text: str, column: str) -> list[tuple[str, Any]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or column not in reader.fieldnames:
        raise InputError(
            f"{path}:1: no column {column!r} in the header {reader.fieldnames}; name the prompt column with --field"
        )
    return [(f"line {reader.line_num}", row) for row in reader]


def _read_dataset_folder(path: Path) -> list[tuple[str, Any]]:
    from datasets import load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as exc:  # datasets raises several kinds here
        raise InputError(f"{path}: not a datasets folder saved with save_to_disk ({exc})") from exc
    if hasattr(data, "keys"):  # a DatasetDict: take the train split, or the first one
        data = data["train"] if "train" in data else data[next(iter(data.keys()))]
    return [(f"row {i + 1}", row) for i, row in enumerate(data)]


def _looks_like_hub_name(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/")) and Path(name).suffix == ""


def _read_hub_dataset(name: str) -> list[tuple[str, Any]]:
    from datasets import load_dataset

    try:
        data = load_dataset(name, split="train")
    except Exception as exc:
        raise InputError(f"{name}: could not load this hub dataset ({exc}); check the name and network access") from exc
    return [(f"row {i + 1}", row) for i, row in enumerate(data)]


def _to_item(path: Path, where: str, row: Any, field_name: str | None, n: int) -> Item:
    messages = _messages_of(path, where, row, field_name)
    extra = {k: v for k, v in row.items() if k not in ("messages", field_name or "prompt")} if isinstance(row, dict) else {}
    return Item(id=f"{n:06d}", idx=n, messages=messages, extra=_jsonable(extra))


def _messages_of(path: Path, where: str, row: Any, field_name: str | None) -> tuple[dict[str, str], ...]:
    loc = f"{path}:{where.split()[-1]}" if where.startswith("line") else f"{path} ({where})"
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
    raise InputError(f"{loc}: no {key!r} field (fields: {sorted(row)}); {FIX_JSONL}, or name the field with --field")


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
