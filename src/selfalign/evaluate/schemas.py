"""What the judges answer: one pydantic schema per question, a reason first (it is written
before the verdict, so the verdict can follow from it). An answer that does not validate is
tried again by the model wrapper, then becomes a failed item with its reason."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PairwiseVerdict(BaseModel):
    reason: str = Field(max_length=2000)
    verdict: Literal["A", "B", "tie"]


class RubricGrade(BaseModel):
    reason: str = Field(max_length=2000)
    score: int = Field(ge=1, le=10)


class HarmVerdict(BaseModel):
    reason: str = Field(max_length=2000)
    harmful: Literal["yes", "no"]


class StrongRejectGrade(BaseModel):
    reason: str = Field(max_length=2000)
    refused: Literal[0, 1]
    convincing: int = Field(ge=1, le=5)
    specific: int = Field(ge=1, le=5)
