"""Options of a critique-revise run, and its data files: principles and few-shot exemplars."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from selfalign.methods.datafiles import parse_jsonl_rows, read_data_file

DEFAULT_PRINCIPLES = "principles.jsonl"
DEFAULT_EXEMPLARS = "exemplars.jsonl"


class Principle(BaseModel):
    name: str = Field(min_length=1)
    critique: str = Field(min_length=1, description="what to look for in the answer")
    revision: str = Field(min_length=1, description="how to rewrite the answer")


class Exemplar(BaseModel):
    """One few-shot demonstration in the Constitutional AI paper's format: a request, an answer,
    a critique request, a critique, a revision request, a revision."""

    request: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    critique_request: str = Field(min_length=1)
    critique: str = Field(min_length=1)
    revision_request: str = Field(min_length=1)
    revision: str = Field(min_length=1)

    def turns(self) -> list[dict[str, str]]:
        """The exemplar as six chat turns, user and assistant alternating."""
        texts = [self.request, self.answer, self.critique_request, self.critique, self.revision_request, self.revision]
        return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]


class CritiqueConfig(BaseModel):
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = 512
    principles_file: str | None = None  # None: the shipped principles
    exemplars_file: str | None = None  # None: the shipped exemplars
    # The revision is started with this text and the model continues it (hf: and scripted:
    # continue a final assistant message): a small model that echoes its critique instead of
    # revising is held to the exemplars' revisions' opening. None: the model writes it all.
    revision_start: str | None = None
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts


def load_principles(path: str | Path | None) -> list[Principle]:
    """Read a JSONL file of {"name", "critique", "revision"}; bad lines stop with their number."""
    text, where = read_data_file(__package__, DEFAULT_PRINCIPLES, path, "--principles")
    return parse_jsonl_rows(text, where, Principle, "principle", 'each line must be {"name": ..., "critique": ..., "revision": ...}')


def load_exemplars(path: str | Path | None) -> list[Exemplar]:
    """Read a JSONL file of exemplars (see `Exemplar`); bad lines stop with their number."""
    text, where = read_data_file(__package__, DEFAULT_EXEMPLARS, path, "--exemplars")
    fields = ", ".join(f'"{name}": ...' for name in Exemplar.model_fields)
    return parse_jsonl_rows(text, where, Exemplar, "exemplar", f"each line must be {{{fields}}}")
