"""Attacks on a model, with attack success rates: `run_attack(AttackConfig(...))` runs every
(model, behaviour, attack, variant) as one item of a resumable run and scores each attempt with
the evaluation's scorers; `build_results` turns the run into results.json's figures.

Attacks (one module each): none (the baseline), template, encoding, pair, gcg, prefill,
multi-turn, privacy, memorization (planted canaries), trigger (a planted backdoor). Add one with `register_attack`, or an entry point in `selfalign.attacks`.
"""

from .base import Attack, AttackContext, Attempt, Behavior
from .behaviors import load_behaviors
from .options import AttackOptions
from .registry import build_attacks, known_attacks, register_attack
from .results import build_results, render_markdown, render_table, write_results
from .run import AttackConfig, AttackRun, run_attack

__all__ = [
    "Attack", "AttackConfig", "AttackContext", "AttackOptions", "AttackRun", "Attempt", "Behavior",
    "build_attacks", "build_results", "known_attacks", "load_behaviors", "register_attack",
    "render_markdown", "render_table", "run_attack", "write_results",
]
