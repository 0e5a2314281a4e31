"""The Sandbox's social space: an N x N grid of agents, numbered row by row; neighbours are the
other agents within the social radius (Euclidean distance, no wrap-around)."""

from __future__ import annotations

import math
import random

from selfalign.methods.seeding import derive_seed


def agent_id(agent: int) -> str:
    """The one way an agent is named in ids and keys: "a00017"."""
    return f"a{agent:05d}"


def round_id(round_: int) -> str:
    """The one way a round is named in ids and keys: "r002" (rounds are at most 999)."""
    return f"r{round_:03d}"


def position(agent: int, grid: int) -> tuple[int, int]:
    """(row, column) of an agent numbered row by row from 0."""
    return divmod(agent, grid)


def distance(a: int, b: int, grid: int) -> float:
    (ra, ca), (rb, cb) = position(a, grid), position(b, grid)
    return math.hypot(ra - rb, ca - cb)


def neighbours(agent: int, grid: int, radius: float) -> list[int]:
    """Every other agent at Euclidean distance <= radius, in agent order."""
    eps = 1e-9  # a radius of exactly sqrt(2) must include the diagonal
    row, col = position(agent, grid)
    reach = int(math.floor(radius + eps))
    found = []
    for r in range(max(0, row - reach), min(grid, row + reach + 1)):
        for c in range(max(0, col - reach), min(grid, col + reach + 1)):
            if (r, c) != (row, col) and math.hypot(r - row, c - col) <= radius + eps:
                found.append(r * grid + c)
    return found


def min_neighbour_count(grid: int, radius: float) -> int:
    """The fewest neighbours any agent has: a corner agent's count (no wrap-around)."""
    return len(neighbours(0, grid, radius))


def choose_raters(agent: int, grid: int, radius: float, k: int, seed: int, round_: int) -> list[int]:
    """k neighbours drawn without replacement, the same ones for the same seed, round and agent."""
    pool = neighbours(agent, grid, radius)
    if len(pool) < k:
        raise ValueError(f"agent {agent} has {len(pool)} neighbours within radius {radius}, fewer than {k}")
    rng = random.Random(derive_seed(seed, "raters", round_, agent))
    return sorted(rng.sample(pool, k))
