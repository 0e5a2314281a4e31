"""Data files a user can replace with a flag (principles, stance pairs, ...): JSONL of pydantic
rows, read and checked before any model call, bad lines stopped with their number."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from selfalign.errors import InputError

Row = TypeVar("Row", bound=BaseModel)


def read_data_file(package: str, default_name: str, path: str | Path | None, flag: str) -> tuple[str, str]:
    """The text of the user's file, or of the shipped default; and where it came from."""
    if path is None:
        text = resources.files(package).joinpath(default_name).read_text("utf-8")
        return text, f"{package.replace('.', '/')}/{default_name}"
    if not Path(path).is_file():
        raise InputError(f"{flag} {path}: no such file")
    return Path(path).read_text("utf-8"), str(path)


def parse_jsonl_rows(text: str, where: str, row_type: type[Row], what: str, fix: str) -> list[Row]:
    """One `row_type` a non-blank line; the first bad line raises InputError with its number."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(row_type.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}:{lineno}: broken JSON ({exc.msg}); {fix}") from exc
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(map(str, err["loc"])) or "line"
            raise InputError(f"{where}:{lineno}: bad {what} ({field}: {err['msg']}); {fix}") from exc
    if not rows:
        raise InputError(f"{where}: no {what}s; {fix}")
    return rows
