"""Data files a user can replace with a flag (principles, stance pairs, ...): JSONL (or a JSON
array) of pydantic rows, read by the one reader of data files and checked before any model
call, bad lines stopped with their number."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, read_text, rows_of_text

Row = TypeVar("Row", bound=BaseModel)


def read_data_file(package: str, default_name: str, path: str | Path | None, flag: str) -> tuple[str, str]:
    """The text of the user's file, or of the shipped default; and where it came from. Read as
    every data file is (UTF-8 with or without a byte-order mark; LF or CRLF)."""
    if path is None:
        text = resources.files(package).joinpath(default_name).read_text("utf-8")
        return text, f"{package.replace('.', '/')}/{default_name}"
    if not Path(path).is_file():
        raise InputError(f"{flag} {path}: no such file")
    return read_text(Path(path)), str(path)


def parse_jsonl_rows(text: str, where: str, row_type: type[Row], what: str, fix: str) -> list[Row]:
    """One `row_type` a row (JSON lines, or a JSON array when `where` ends in .json); the first
    bad row raises InputError with its line."""
    return [row for _, row in parse_jsonl_rows_where(text, where, row_type, what, fix)]


def parse_jsonl_rows_where(text: str, where: str, row_type: type[Row], what: str, fix: str) -> list[tuple[str, Row]]:
    """As `parse_jsonl_rows`, each row with where it is ("file.jsonl:3"), for checks across rows."""
    rows = []
    for row in rows_of_text(text, where, Path(where).suffix.lower() if where.endswith(".json") else ".jsonl", fix):
        if isinstance(row.value, BrokenRow):
            raise InputError(row.value.problem)
        try:
            rows.append((row.where, row_type.model_validate(row.value)))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(map(str, err["loc"])) or "line"
            raise InputError(f"{row.where}: bad {what} ({field}: {err['msg']}); {fix}") from exc
    if not rows:
        raise InputError(f"{where}: no {what}s; {fix}")
    return rows
