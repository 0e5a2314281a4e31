"""Critique-Revise (Constitutional AI style): answer, critique the answer against a principle
drawn from a principles file, revise, with few-shot exemplars of critiques and revisions in
front of the conversation. (q, revision) is SFT data; (q, revision, initial) a preference pair.
Prompts whose row says `"red_team": false` are helpfulness prompts: answered only, their own
answer kept for SFT (the paper mixes such samples into its supervised stage)."""

from .config import CritiqueConfig, Exemplar, load_exemplars, load_principles
from .export import EXPORTS
from .record import CritiqueRecord
from .steps import run_item

__all__ = ["EXPORTS", "CritiqueConfig", "CritiqueRecord", "Exemplar", "load_exemplars", "load_principles", "run_item"]
