"""Evaluation: benchmarks in their public formats, scorers (refusal phrases, LLM judges), and
statistics with bootstrap intervals. `run_eval(EvalConfig(...))` answers, scores and returns an
`Evaluation`; `build_results` turns it into the figures of results.json."""

from .answers import Generation
from .benchmarks import BENCHMARKS, load_benchmarks
from .results import build_results, render_markdown, render_table, write_results
from .run import EvalConfig, Evaluation, run_eval

__all__ = [
    "BENCHMARKS",
    "EvalConfig",
    "Evaluation",
    "Generation",
    "build_results",
    "load_benchmarks",
    "render_markdown",
    "render_table",
    "run_eval",
    "write_results",
]
