"""Pydantic schemas of the training record formats `selfalign train` reads.

- SFT:         {"messages": [{"role", "content"}, ...]}
- preference:  {"prompt": [messages] | str, "chosen": [messages] | str, "rejected": ...}
               (TRL's conversational preference format; without "prompt", chosen and rejected are
               whole conversations and their common first messages are the prompt)
- groups:      {"prompt": [messages] | str, "responses": [str, ...], "ratings": [number, ...]}
- Sandbox:     {"query": str, "responses": [str, ...], "scores": [number, ...]}
               (the original Stable Alignment release; an optional "instruction"/"input" pair
               replaces "query")

Ratings are checked against the rating scale passed as validation context
(`Model.model_validate(row, context={"rating_scale": 7})`).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from selfalign.llm.types import Message, MessageDicts, as_dicts


def _check_ratings(values: Any, info: ValidationInfo) -> list[float]:
    scale = float((info.context or {}).get("rating_scale", 7.0))
    if not isinstance(values, list):
        raise ValueError("must be a list of numbers")
    out: list[float] = []
    for i, v in enumerate(values):
        # bool is an int in Python; a true/false rating is a bug upstream, not a 1/0.
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(
                f"rating #{i + 1} is {v!r}, not a number; rate every response in [1, {scale:g}] "
                "or drop the response"
            )
        if not 1.0 <= float(v) <= scale:
            raise ValueError(
                f"rating #{i + 1} is {v!r}, outside [1, {scale:g}]; placeholder ratings (such as 8 "
                "or -1 for 'no rating') must be removed or replaced by real ratings, or pass "
                "--rating-scale if your scale is larger"
            )
        out.append(float(v))
    return out


class SFTRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    messages: list[Message]

    @field_validator("messages")
    @classmethod
    def _has_assistant(cls, value: list[Message]) -> list[Message]:
        if not any(m.role == "assistant" for m in value):
            raise ValueError("needs at least one message with role 'assistant' to train on")
        return value

    def conversation(self) -> MessageDicts:
        return as_dicts(self.messages, "user")


class PreferenceRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: list[Message] | str | None = None
    chosen: list[Message] | str
    rejected: list[Message] | str

    @model_validator(mode="after")
    def _prompt(self) -> "PreferenceRecord":
        if self.prompt is None and (isinstance(self.chosen, str) or isinstance(self.rejected, str)):
            raise ValueError("without a 'prompt' field, 'chosen' and 'rejected' must be message lists")
        if not self.split()[1] or not self.split()[2]:
            raise ValueError("'chosen' and 'rejected' must each contain an answer")
        return self

    def split(self) -> tuple[MessageDicts, MessageDicts, MessageDicts]:
        """(prompt, chosen completion, rejected completion) as message lists."""
        chosen = as_dicts(self.chosen, "assistant")
        rejected = as_dicts(self.rejected, "assistant")
        if self.prompt is not None:
            return as_dicts(self.prompt, "user"), chosen, rejected
        # Implicit prompt: the messages both conversations share (HH-RLHF style records).
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        return chosen[:n], chosen[n:], rejected[n:]


def _check_one_rating_each(responses: list[str], ratings: list[float], word: str) -> None:
    if not responses:
        raise ValueError("'responses' is empty")
    if len(responses) != len(ratings):
        raise ValueError(f"{len(responses)} responses but {len(ratings)} {word}s; give one {word} per response")


class GroupRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: list[Message] | str
    responses: list[str]
    ratings: list[float]

    @field_validator("ratings", mode="before")
    @classmethod
    def _valid_ratings(cls, value: Any, info: ValidationInfo) -> list[float]:
        return _check_ratings(value, info)

    @model_validator(mode="after")
    def _lengths(self) -> "GroupRecord":
        _check_one_rating_each(self.responses, self.ratings, "rating")
        return self

    def prompt_messages(self) -> MessageDicts:
        return as_dicts(self.prompt, "user")


class SandboxRecord(BaseModel):
    """A record of the original Stable Alignment (Sandbox) release."""

    model_config = ConfigDict(extra="allow")

    query: str | None = None
    instruction: str | None = None
    input: str | None = None
    responses: list[str]
    scores: list[float]

    @field_validator("scores", mode="before")
    @classmethod
    def _valid_scores(cls, value: Any, info: ValidationInfo) -> list[float]:
        return _check_ratings(value, info)

    @model_validator(mode="after")
    def _check(self) -> "SandboxRecord":
        if self.query is None and self.instruction is None:
            raise ValueError("needs 'query' (or 'instruction')")
        _check_one_rating_each(self.responses, self.scores, "score")
        return self

    def as_group(self) -> GroupRecord:
        text = self.instruction if self.instruction is not None else self.query
        if self.instruction is not None and self.input:
            text = f"{self.instruction}\n\n{self.input}"
        # Ratings were validated already; build without re-validating against a context.
        return GroupRecord.model_construct(prompt=text, responses=self.responses, ratings=self.scores)


Record = SFTRecord | PreferenceRecord | GroupRecord


def detect_schema(row: dict[str, Any]) -> type[BaseModel] | None:
    """Which format a row is in, by its keys; None when it matches none."""
    if "messages" in row:
        return SFTRecord
    if "chosen" in row or "rejected" in row:
        return PreferenceRecord
    if "ratings" in row:
        return GroupRecord
    if "scores" in row or "query" in row:
        return SandboxRecord
    if "responses" in row:
        return GroupRecord
    return None
