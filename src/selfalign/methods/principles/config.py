"""Options of the SELF-ALIGN stages. Defaults follow the paper's reference pipeline where it
states them (topics 10 a call over at most 9 rounds, questions from 5 new mixed-type hints
beside 5 seed questions, 5 tasks shown per self-instruct call, principled answers at T=0.5
top_p 0.95, verbose answers at T=0.3 top_p 0.7)."""

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
    per_type: int = Field(20, ge=0, description="red-teaming questions kept per type (one a topic)")
    self_instruct: int = Field(100, ge=0, description="plain self-instruct instructions kept in all")
    topic_rounds: int = Field(9, ge=1, description="topic rounds at most (the reference grows its pool for 9)")
    topics_per_call: int = Field(10, ge=1)
    topic_calls: int | None = Field(None, ge=1, description="brainstorming calls per type a round; None: enough for the topics still missing twice over")
    topics_shown: int = Field(5, ge=1, description="topics so far shown per brainstorming call (the list it continues)")
    hints_per_call: int = Field(5, ge=1, description="new (type, topic) hints, one question each, per question-writing call")
    examples: int = Field(5, ge=1, description="seed questions shown per question-writing call, of mixed types")
    calls_per_round: int = Field(8, ge=1, description="self-instruct generations per round")
    new_per_call: int = Field(10, ge=1, description="tasks asked for per self-instruct call")
    demos: int = Field(5, ge=1, description="tasks shown per self-instruct call, from the seeds and tasks kept earlier")
    max_rounds: int = Field(50, ge=1, description="self-instruct rounds at most")
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)

    def calls_per_type(self, missing: int) -> int:
        return self.topic_calls or max(1, math.ceil(2 * missing / self.topics_per_call))


class PrinciplesConfig(StageConfig):
    principles_file: str | None = None
    exemplars_file: str | None = None
    sorry_bias: float = Field(-100.0, ge=-100, le=0, description="logit bias on the token 'Sorry' (the reference's -100; 0: none)")
    identity: str = Field("I am a helpful, ethical and reliable assistant.",
                          description="the self-identification line that opens every exemplar's thoughts; answers whose thoughts lack it are dropped")
    ngram_penalties: dict[int, float] = Field(default_factory=dict,
                                              description="n -> penalty on repeating n-grams of the continuation (the reference: none here)")
    temperature: float = Field(0.5, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)


class VerboseConfig(StageConfig):
    min_chars: int = Field(128, ge=1, description="answers cut at max_tokens and shorter than this are dropped (the reference: 128)")
    ngram_penalties: dict[int, float] = Field(default_factory=lambda: {3: 1.0, 4: 2.0},
                                              description="n -> penalty on repeating n-grams (the reference: 3-gram 1.0, 4-gram 2.0)")
    temperature: float = Field(0.3, ge=0, le=2)
    top_p: float = Field(0.7, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)  # the reference: 512
