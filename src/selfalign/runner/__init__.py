"""Runs items concurrently against a run store: resume, failure isolation, progress; and rounds
of items where each round depends on the records of the one before."""

from .rounds import Rounds, run_rounds
from .runner import RunSummary, run_items

__all__ = ["Rounds", "RunSummary", "run_items", "run_rounds"]
