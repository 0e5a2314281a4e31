"""A Sandbox simulation as rounds of turns, for the runner's `run_rounds`.

Each (round, agent) turn is an item ("r002-a00017"). A round runs all its agents concurrently
against the memories as they were at the end of the previous round; when every turn of the
round has finished, `end_round` adds the revisions to the agents' memories in agent order (state
namespace `sandbox.memory`, each add idempotent) and returns the round's metrics, which the
runner stores (`sandbox.rounds`), marking the round finished. So rounds are deterministic under
a seed, and a run resumed after a kill gives the same records as an uninterrupted one.

The simulation touches the run only through `StateStore` (memory.py): the runner and the store
drive it, it does not drive them.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import numpy as np

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .backscatter import PROMPTS_DIR, Society, run_turn, turn_id, turn_item
from .config import SandboxConfig
from .embed import Embedder
from .grid import round_id
from .memory import MemoryBank, MemoryEntry, StateStore
from .metrics import format_metrics, round_metrics
from .record import SandboxRecord
from .stances import StanceSet, assign_stances, check_stances_cover

ROUNDS_NS = "sandbox.rounds"
META_NS = "sandbox.meta"


class Simulation:
    """The rounds of one simulation (selfalign.runner.Rounds). Build it with `start_simulation`."""

    namespace = ROUNDS_NS

    def __init__(self, state: StateStore, society: Society, embedder: Embedder) -> None:
        self.state, self.society, self.embedder = state, society, embedder
        self.rounds = society.config.rounds
        self.run_item = partial(run_turn, society=society)

    def key(self, round_: int) -> str:
        return round_id(round_)

    def items(self, round_: int) -> list[Item]:
        cfg = self.society.config
        return [turn_item(round_, agent, cfg, self.society.questions) for agent in range(cfg.agents)]

    def end_round(self, round_: int, records: list[dict[str, Any]], failures: list[tuple[str, str]]) -> dict[str, Any]:
        """Revisions to memory in agent order, then the round's metrics."""
        if not records:
            first = failures[0][1] if failures else "unknown"
            raise UserError(f"round {round_}: every agent's turn failed (first: {first}); fix the cause and rerun to resume")
        turns = sorted((SandboxRecord.model_validate(r) for r in records), key=lambda r: r.agent)
        vectors = _embed_unique(self.embedder, [t.question for t in turns])
        for turn, vector in zip(turns, vectors):
            entry = MemoryEntry(turn.question, turn.revision, vector, round_, turn_id(round_, turn.agent))
            self.society.bank.add(self.state, turn.agent, 0, entry)
        return round_metrics(round_, self.society.config.agents, turns, len(failures))

    def describe(self, summary: dict[str, Any]) -> str:
        return format_metrics(summary, self.rounds)

    def memories(self) -> int:
        """Memories held by all agents."""
        return self.society.bank.size()


def start_simulation(
    state: StateStore,
    model: Model,
    config: SandboxConfig,
    questions: list[str],
    stances: StanceSet,
    embedder: Embedder,
    *,
    observer: Model | None = None,
    prompts: Prompts | None = None,
) -> Simulation:
    """A simulation with its agents' memories loaded, seeded once per run."""
    if not questions:
        raise UserError("the question pool is empty")
    stance_of = assign_stances(config.stance, config.agents, config.seed)
    check_stances_cover(stances, set(stance_of))
    bank = MemoryBank.load(state, config.agents)
    _seed_memories(state, bank, stance_of, stances, embedder, config)
    society = Society(
        model=model,
        observer=observer or model,
        config=config,
        questions=questions,
        question_vectors=embedder.embed(questions),
        stances=stance_of,
        bank=bank,
        prompts=prompts or Prompts(PROMPTS_DIR, config.templates),
    )
    return Simulation(state, society, embedder)


def _seed_memories(
    state: StateStore, bank: MemoryBank, stance_of: list[str], stances: StanceSet, embedder: Embedder, config: SandboxConfig
) -> None:
    """Each agent's memory starts with its own seeded sample of `memory_seeds` pairs of its
    stance (round 0), so agents of one stance still differ; done once per run."""
    if state.get_state(META_NS, "seeded"):
        return
    pairs = {s: stances.of(s) for s in set(stance_of)}
    vectors = {s: _embed_unique(embedder, [p.question for p in ps]) for s, ps in pairs.items()}
    for agent, stance in enumerate(stance_of):
        for n, pick in enumerate(seed_sample(len(pairs[stance]), config.memory_seeds, config.seed, agent)):
            pair = pairs[stance][pick]
            entry = MemoryEntry(pair.question, pair.answer, vectors[stance][pick], 0, f"seed:{stance}:{pick}")
            bank.add(state, agent, n, entry)
    state.put_state(META_NS, "seeded", True)


def seed_sample(available: int, wanted: int, seed: int, agent: int) -> list[int]:
    """Which of the stance's pairs seed this agent's memory: a seeded sample, in file order."""
    if wanted >= available:
        return list(range(available))
    return sorted(random.Random(derive_seed(seed, "memory", agent)).sample(range(available), wanted))


def _embed_unique(embedder: Embedder, texts: list[str]) -> np.ndarray:
    unique = sorted(set(texts))
    vectors = embedder.embed(unique)
    index = {t: i for i, t in enumerate(unique)}
    return vectors[[index[t] for t in texts]] if texts else vectors
