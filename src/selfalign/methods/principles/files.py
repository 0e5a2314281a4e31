"""The data files of SELF-ALIGN, each shipped in `data/` and replaceable with a flag. All are
JSON lines (or a JSON array in a .json file), read by the one reader of data files and checked
before any model call; a bad line stops with the file, the line and what a line must hold.

    red-team types (--red-team-types)  {"name": "legal expertise",
                                        "description": "questions that require legal expertise",
                                        "seeds": [{"topic": "Rental Deposits",
                                                   "question": "Can my landlord keep my deposit ...?"}, ...]}
                                        (a seed may be a bare question; its topic then seeds no list)
    principles (--principles)          {"id": 1, "name": "ethical", "text": "Refuse to help ..."}
    exemplars (--exemplars)            {"turns": [{"user": ..., "thoughts": ..., "answer": ...}, ...],
                                        "leaks": ["phrases whose appearance in an answer means leakage"]}
    seed tasks (--seeds)               {"instruction": "...", "input": "..."}; the public self-instruct
                                        seed format (seed_tasks.jsonl: {"instruction", "instances":
                                        [{"input", "output"}], "is_classification"}) too
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selfalign.errors import InputError
from selfalign.methods.datafiles import parse_jsonl_rows_where, read_data_file

PACKAGE = __package__
Text = Field(min_length=1)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class SeedQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Text
    topic: str | None = None

    _strip = field_validator("question")(_not_blank)

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str | None) -> str | None:
        return _not_blank(topic) if topic is not None else None


class RedTeamType(BaseModel):
    name: str = Text
    description: str = Text
    seeds: list[SeedQuestion] = Field(min_length=1, description="example questions of this type, with their topics")

    _strip = field_validator("name", "description")(_not_blank)

    @field_validator("seeds", mode="before")
    @classmethod
    def _bare_questions(cls, seeds: object) -> object:
        if isinstance(seeds, list):
            return [{"question": s} if isinstance(s, str) else s for s in seeds]
        return seeds

    @property
    def topics(self) -> list[str]:
        """The seed questions' topics, in order, without repeats: the first round's list."""
        return list(dict.fromkeys(s.topic for s in self.seeds if s.topic))


class Principle(BaseModel):
    id: int = Field(ge=1)
    name: str = Text
    text: str = Text

    _strip = field_validator("name", "text")(_not_blank)


class Turn(BaseModel):
    user: str = Text
    thoughts: str = Text
    answer: str = Text

    _strip = field_validator("user", "thoughts", "answer")(_not_blank)


class Exemplar(BaseModel):
    turns: list[Turn] = Field(min_length=1)
    leaks: list[str] = Field(default_factory=list, description="phrases whose appearance in an answer means leakage")


class Instance(BaseModel):
    input: str = ""
    output: str = ""


class SeedTask(BaseModel):
    """A task of the self-instruct pool (Alpaca format): an instruction and its input, if any."""

    model_config = ConfigDict(extra="ignore")  # the public format carries id, name, is_classification
    instruction: str = Text
    input: str = ""
    instances: list[Instance] = Field(default_factory=list)

    _strip = field_validator("instruction")(_not_blank)

    @model_validator(mode="after")
    def _first_instance(self) -> "SeedTask":
        # the public seed file holds the input in its first instance, as the reference reads it
        if not self.input and self.instances:
            object.__setattr__(self, "input", self.instances[0].input)
        object.__setattr__(self, "input", self.input.strip())
        return self


FIX_TYPES = ('each line must be {"name": "...", "description": "questions that require ...", '
             '"seeds": [{"topic": "A Topic", "question": "a question"}, ...]}')
FIX_PRINCIPLES = 'each line must be {"id": 1, "name": "ethical", "text": "what the rule asks"}'
FIX_EXEMPLARS = ('each line must be {"turns": [{"user": "...", "thoughts": "... rule 1 (ethical) ...", "answer": "..."}], '
                 '"leaks": ["a phrase"]}')
FIX_SEEDS = ('each line must be {"instruction": "...", "input": ""} (or the public seed format: '
             '{"instruction": "...", "instances": [{"input": "", "output": "..."}]})')


def load_red_team_types(path: str | Path | None) -> list[RedTeamType]:
    rows = _rows("data/red_team_types.jsonl", path, "--red-team-types", RedTeamType, "red-team type", FIX_TYPES)
    _unique(rows, lambda t: t.name.lower(), "red-team type name", FIX_TYPES)
    return [t for _, t in rows]


def load_principles(path: str | Path | None) -> list[Principle]:
    rows = _rows("data/principles.jsonl", path, "--principles", Principle, "principle", FIX_PRINCIPLES)
    _unique(rows, lambda p: p.id, "principle id", "give each principle its own number")
    return [p for _, p in rows]


def load_exemplars(path: str | Path | None, principles: list[Principle]) -> list[Exemplar]:
    """Exemplars whose thoughts cite only principles that exist (by number)."""
    rows = _rows("data/exemplars.jsonl", path, "--exemplars", Exemplar, "exemplar", FIX_EXEMPLARS)
    known = {p.id for p in principles}
    for where, exemplar in rows:
        for turn in exemplar.turns:
            cited = cited_numbers(turn.thoughts)
            if not cited:
                raise InputError(f"{where}: thoughts {turn.thoughts[:60]!r} cite no rule; name the rules that apply "
                                 "as 'rule N (name)'")
            unknown = sorted(set(cited) - known)
            if unknown:
                raise InputError(f"{where}: thoughts cite rule {unknown[0]}, which the principles do not have "
                                 f"(they number {min(known)} to {max(known)}); cite an existing rule")
    return [e for _, e in rows]


def load_seed_tasks(path: str | Path | None) -> list[SeedTask]:
    rows = _rows("data/seed_tasks.jsonl", path, "--seeds", SeedTask, "seed task", FIX_SEEDS)
    return [task for _, task in rows]


_CITATION = re.compile(r"\b(?:rules?|principles?)\s+(\d+)|\b(\d+)\s*\(")


def cited_numbers(thoughts: str) -> list[int]:
    """Rule numbers named in internal thoughts: 'rule 7 (candor)', 'rules 1 (ethical) and 3 (helpful)',
    'principle 9', in order of first mention."""
    numbers = (int(a or b) for a, b in _CITATION.findall(thoughts))
    return list(dict.fromkeys(numbers))


def shipped(name: str) -> bool:
    """A data file shipped in data/ (`--exemplars exemplars-with-refusal.jsonl` names one)."""
    return "/" not in name and resources.files(PACKAGE).joinpath("data", name).is_file()


def _rows(default: str, path: str | Path | None, flag: str, row_type, what: str, fix: str):  # type: ignore[no-untyped-def]
    if path is not None and not Path(path).is_file() and shipped(str(path)):
        default, path = f"data/{path}", None
    text, where = read_data_file(PACKAGE, default, path, flag)
    return parse_jsonl_rows_where(text, where, row_type, what, fix)


def _unique(rows, key, what: str, fix: str) -> None:  # type: ignore[no-untyped-def]
    seen: dict[object, str] = {}
    for where, row in rows:
        k = key(row)
        if k in seen:
            raise InputError(f"{where}: {what} {k!r} appears again (first at {seen[k]}); {fix}")
        seen[k] = where
