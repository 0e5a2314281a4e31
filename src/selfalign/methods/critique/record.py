"""What one critique-revise item produces."""

from __future__ import annotations

from pydantic import BaseModel


class CritiqueRecord(BaseModel):
    principle: str
    initial: str
    critique: str
    revision: str
