"""Initial stances: which agents start good or bad, and the stance-labelled question/answer
pairs their memories are seeded with (a shipped set we wrote, or a user's file via --stances)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from selfalign.errors import InputError
from selfalign.methods.datafiles import parse_jsonl_rows, read_data_file
from selfalign.methods.seeding import derive_seed

DEFAULT_STANCES = "stances.jsonl"
FIX = 'each line must be {"stance": "good" or "bad", "question": "...", "answer": "..."}'


class StancePair(BaseModel):
    stance: Literal["good", "bad"]
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


@dataclass(frozen=True)
class StanceSet:
    pairs: list[StancePair]
    text: str  # the file's content, so a run can refuse a changed file on resume
    where: str

    def of(self, stance: str) -> list[StancePair]:
        return [p for p in self.pairs if p.stance == stance]


def load_stances(path: str | Path | None) -> StanceSet:
    """Read stance-labelled pairs; bad lines stop with their number, before any model call."""
    text, where = read_data_file(__package__, DEFAULT_STANCES, path, "--stances")
    pairs = parse_jsonl_rows(text, where, StancePair, "stance pair", FIX)
    return StanceSet(pairs, text, where)


def assign_stances(mode: str, agents: int, seed: int) -> list[str]:
    """The stance ("good"/"bad") of each agent, in agent order.

    all_good / all_bad: everyone; half_half: the first half of the agents (the top rows) good,
    the rest bad; mixed_half_half: half good, half bad, scattered over the grid (seeded shuffle).
    """
    half = agents // 2
    if mode == "all_good":
        return ["good"] * agents
    if mode == "all_bad":
        return ["bad"] * agents
    split = ["good"] * (agents - half) + ["bad"] * half
    if mode == "half_half":
        return split
    if mode == "mixed_half_half":
        random.Random(derive_seed(seed, "stances")).shuffle(split)
        return split
    raise ValueError(f"unknown stance mode {mode!r}")


def check_stances_cover(stances: StanceSet, needed: set[str]) -> None:
    for stance in sorted(needed):
        if not stances.of(stance):
            raise InputError(f"{stances.where}: no pairs with stance {stance!r}, which this run needs")
