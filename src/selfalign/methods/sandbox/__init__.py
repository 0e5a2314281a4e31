"""Sandbox (Liu et al., 2023): a grid of agents with memories gives each other social feedback.
Each round every agent drafts an answer with its memory, neighbours within the social radius
rate it, the agent revises; observers rate draft and revision. The records become imitation,
self-critic and realignment groups for Stable Alignment, and preference pairs.

    simulate.py    rounds of turns (the runner drives them)     backscatter.py  one agent's turn
    grid.py        positions, neighbours within the radius      observers.py    memory-less judges
    memory.py      agents' memories and their recall             embed.py        lexical / sentence-transformers
    stances.py     initial stances and the seed pairs            metrics.py      per-round metrics
    export.py      the data sets and the 5:1:1 mix               record.py       records and rating schemas
"""

from .config import STANCES, SandboxConfig, make_config
from .export import EXPORTS, export_run, parse_mix
from .record import SandboxRecord
from .simulate import Simulation, start_simulation
from .stances import load_stances

__all__ = [
    "EXPORTS",
    "STANCES",
    "SandboxConfig",
    "SandboxRecord",
    "Simulation",
    "export_run",
    "load_stances",
    "make_config",
    "parse_mix",
    "start_simulation",
]
