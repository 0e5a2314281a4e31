"""Options of the SELF-ALIGN stages. Defaults follow the paper's reference pipeline where it
states them (topics 10 a call, questions from numbered hints with 5 seed questions, principled
answers at T=0.5 top_p 0.95, verbose answers at T=0.3 top_p 0.7)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    raw: bool | None = Field(None, description="raw text prompts; None: raw when the model has no chat template")
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts


class SelfInstructConfig(StageConfig):
    red_team_types_file: str | None = None
    seeds_file: str | None = None
    per_type: int = Field(20, ge=0, description="red-teaming questions kept per type")
    self_instruct: int = Field(100, ge=0, description="plain self-instruct instructions kept in all")
    topics_per_call: int = Field(10, ge=1)
    topic_calls: int | None = Field(None, ge=1, description="brainstorming calls per type; None: enough for per_type twice over")
    hints_per_call: int = Field(10, ge=1, description="topics (one question each) per question-writing call")
    examples: int = Field(5, ge=1, description="seed questions shown per red-teaming call")
    calls_per_round: int = Field(8, ge=1, description="self-instruct generations per round")
    new_per_call: int = Field(10, ge=1, description="instructions asked for per self-instruct call")
    seed_demos: int = Field(4, ge=1, description="seed tasks shown per self-instruct call")
    generated_demos: int = Field(2, ge=0, description="instructions kept earlier shown per self-instruct call")
    max_rounds: int = Field(50, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)

    def calls_per_type(self) -> int:
        return self.topic_calls or max(1, math.ceil(2 * self.per_type / self.topics_per_call))


class PrinciplesConfig(StageConfig):
    principles_file: str | None = None
    exemplars_file: str | None = None
    temperature: float = Field(0.5, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)


class VerboseConfig(StageConfig):
    min_chars: int = Field(128, ge=1, description="shorter answers are dropped (the paper's rule: 128)")
    temperature: float = Field(0.3, ge=0, le=2)
    top_p: float = Field(0.7, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)
