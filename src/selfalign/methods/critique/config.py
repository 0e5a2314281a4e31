"""Options of a critique-revise run, and the principles file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from selfalign.errors import InputError

DEFAULT_PRINCIPLES = "principles.jsonl"


class Principle(BaseModel):
    name: str = Field(min_length=1)
    critique: str = Field(min_length=1, description="what to look for in the answer")
    revision: str = Field(min_length=1, description="how to rewrite the answer")


class CritiqueConfig(BaseModel):
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = 512
    principles_file: str | None = None  # None: the shipped principles
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts


def load_principles(path: str | Path | None) -> list[Principle]:
    """Read a JSONL file of {"name", "critique", "revision"}; bad lines stop with their number."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_PRINCIPLES).read_text("utf-8")
        where = f"selfalign/methods/critique/{DEFAULT_PRINCIPLES}"
    else:
        if not Path(path).is_file():
            raise InputError(f"--principles {path}: no such file")
        text, where = Path(path).read_text("utf-8"), str(path)
    principles = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            principles.append(Principle.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InputError(
                f"{where}:{lineno}: bad principle ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                'each line must be {"name": ..., "critique": ..., "revision": ...}'
            ) from exc
    if not principles:
        raise InputError(f"{where}: no principles; add one JSON object a line")
    return principles
