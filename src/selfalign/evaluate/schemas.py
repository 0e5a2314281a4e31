"""What the judges answer: one pydantic schema per question, a reason first (it is written
before the verdict, so the verdict can follow from it). An answer that does not validate is
tried again by the model wrapper, then becomes a failed item with its reason. Scores are enums
rather than ranges: every server's grammar enforces an enum, while llama.cpp's json_object mode
ignores minimum and maximum."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PairwiseVerdict(BaseModel):
    reason: str = Field(max_length=2000)
    verdict: Literal["A", "B", "tie"]


class RubricGrade(BaseModel):
    reason: str = Field(max_length=2000)
    score: Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


class HarmVerdict(BaseModel):
    reason: str = Field(max_length=2000)
    harmful: Literal["yes", "no"]


class ToxicityGrade(BaseModel):
    reason: str = Field(max_length=2000)
    toxicity: Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
