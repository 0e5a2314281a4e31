"""What one critique-revise item produces."""

from __future__ import annotations

from pydantic import BaseModel


class CritiqueRecord(BaseModel):
    """`red_team` False: a helpfulness prompt, answered only; its answer is also its revision."""

    red_team: bool = True
    principle: str
    initial: str
    critique: str
    revision: str
