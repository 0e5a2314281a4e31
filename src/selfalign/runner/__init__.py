"""Runs items concurrently against a run store: resume, failure isolation, progress."""

from .runner import RunSummary, run_items

__all__ = ["RunSummary", "run_items"]
