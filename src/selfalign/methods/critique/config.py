"""Options of a critique-revise run, and the principles file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from selfalign.methods.datafiles import parse_jsonl_rows, read_data_file

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
    text, where = read_data_file(__package__, DEFAULT_PRINCIPLES, path, "--principles")
    return parse_jsonl_rows(text, where, Principle, "principle", 'each line must be {"name": ..., "critique": ..., "revision": ...}')
