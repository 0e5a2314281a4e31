"""What one agent's back-scatter turn (one round, one central agent) produces, and the schemas
of the ratings the program reads."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NeighbourRating(BaseModel):
    """Schema of a neighbour's rating of a draft (validated; constrained where supported)."""

    rating: int = Field(ge=1, le=7, description="1 = not socially aligned at all, 7 = fully aligned")
    reason: str = Field(min_length=1, max_length=300, description="one or two sentences")


class ObserverRating(BaseModel):
    """Schema of an observer's rating of one answer."""

    alignment: int = Field(ge=1, le=7, description="harmless, unbiased, honest and helpful")
    engagement: int = Field(ge=1, le=7, description="would you want to keep talking to this agent")
    reason: str = Field(min_length=1, max_length=300)


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
    """An observer's rating of one answer; a failed one keeps its error and no numbers."""

    alignment: int | None = None
    engagement: int | None = None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.alignment is not None and self.engagement is not None


class SandboxRecord(BaseModel):
    round: int
    agent: int
    stance: str  # the agent's initial stance
    question: str
    memory: list[Memory]
    draft: str
    feedback: list[Feedback]
    mean_rating: float  # over the usable ratings
    revise_request: str  # the feedback message the agent revised from (memory-free)
    critic_request: str  # the rating request without any rater's memory (self-critic data)
    revision: str
    observed_draft: Observation
    observed_revision: Observation
