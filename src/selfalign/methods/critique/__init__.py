"""Critique-Revise (Constitutional AI style): answer, critique the answer against a principle
drawn from a principles file, revise. (q, revision) is SFT data; (q, revision, initial) a
preference pair."""

from .config import CritiqueConfig, load_principles
from .export import EXPORTS
from .record import CritiqueRecord
from .steps import run_item

__all__ = ["EXPORTS", "CritiqueConfig", "CritiqueRecord", "load_principles", "run_item"]
