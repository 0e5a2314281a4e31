"""MATRIX (Pang et al., 2024): before answering, the model plays every part of the society its
answer touches, watches what happens under a social modulator, and revises its answer.

(q, revised) is SFT data; (q, chosen=revised, rejected=initial) a preference pair; the
simulation's own calls are SFT conversations ("simulation" export).
"""

from .config import MatrixConfig
from .export import EXPORTS
from .record import MatrixRecord
from .simulate import run_item

__all__ = ["EXPORTS", "MatrixConfig", "MatrixRecord", "run_item"]
