"""What one agent's back-scatter turn (one round, one central agent) produces, and the schemas
of the ratings the program reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


RECORD_FORMAT = 2  # 1: drafts asked to be aligned, one observer call for both scales


class Rating(BaseModel):
    """Schema of one 1-7 rating with its reason: a neighbour's rating of a draft, or an
    observer's rating of one answer on one scale (validated; constrained where supported)."""

    # the seven values as an enum rather than a range: every server's grammar enforces an enum,
    # while llama.cpp's json_object mode ignores minimum and maximum
    rating: Literal[1, 2, 3, 4, 5, 6, 7] = Field(description="1 = not at all, 7 = completely")
    reason: str = Field(min_length=1, max_length=300, description="one or two sentences")


class Memory(BaseModel):
    """A memory recalled for the draft (or by a rater)."""

    question: str
    answer: str
    similarity: float
    source: str


class Feedback(BaseModel):
    """One neighbour's rating of the draft. A failed rating keeps its error and no number."""

    rater: int
    rating: int | None = None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.rating is not None


class Observation(BaseModel):
    """An observer's ratings of one answer, alignment and engagement asked separately; a failed
    rating keeps its error and no number. The data needs the alignment rating only."""

    alignment: int | None = None
    engagement: int | None = None
    reason: str | None = None  # why that alignment rating
    engagement_reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.alignment is not None


class SandboxRecord(BaseModel):
    format: int = 1  # records written before the format was versioned are format 1
    round: int
    agent: int
    stance: str  # the agent's initial stance
    question: str
    memory: list[Memory]
    draft: str
    feedback: list[Feedback]
    mean_rating: float  # over the usable ratings
    revise_request: str  # the feedback message the agent revised from (memory-free)
    critic_request: str  # question + draft, asking for a critique (self-critic data)
    realign_request: str = ""  # question + draft, asking for critique then revision (realignment data)
    revision: str
    observed_draft: Observation
    observed_revision: Observation
