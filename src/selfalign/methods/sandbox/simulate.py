"""A Sandbox simulation, round by round, resumable at the agent and round where it stopped.

Each (round, agent) turn is a runner item ("r002-a00017"). A round runs all its agents
concurrently (bounded) against the memories as they were at the end of the previous round;
when every turn of the round has finished, the revisions go to the agents' memories in agent
order (state table `sandbox.memory`) and the round's metrics are stored (`sandbox.rounds`),
which marks the round finished. A killed simulation reruns only the turns not yet done (their
finished model calls replay from the cache) and finishes the round end idempotently, so a
resumed run gives the same records as an uninterrupted one.

A turn that failed in a finished round stays failed: later rounds were built on the memories
without its revision, and rerunning it would make the run differ from what they saw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.runner import run_items
from selfalign.store import RunStore

from .backscatter import PROMPTS_DIR, Society, run_turn, turn_id, turn_item
from .config import SandboxConfig
from .embed import Embedder
from .grid import round_id
from .memory import MemoryBank, MemoryEntry
from .metrics import format_metrics, round_metrics
from .record import SandboxRecord
from .stances import StanceSet, assign_stances, check_stances_cover

ROUNDS_NS = "sandbox.rounds"
META_NS = "sandbox.meta"


@dataclass
class SimulationResult:
    metrics: list[dict[str, Any]]  # one per round, in order
    memories: int  # memories held by all agents at the end


async def simulate(
    store: RunStore,
    model: Model,
    config: SandboxConfig,
    questions: list[str],
    stances: StanceSet,
    embedder: Embedder,
    *,
    observer: Model | None = None,
    prompts: Prompts | None = None,
    concurrency: int = 32,
    retry_failed: bool = True,
    progress: bool = False,
    report: Callable[[str], None] = print,
) -> SimulationResult:
    if not questions:
        raise UserError("the question pool is empty")
    stance_of = assign_stances(config.stance, config.agents, config.seed)
    check_stances_cover(stances, set(stance_of))
    bank = MemoryBank.load(store, config.agents)
    _seed_memories(store, bank, stance_of, stances, embedder, config)
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
    metrics = []
    for round_ in range(1, config.rounds + 1):
        done = store.get_state(ROUNDS_NS, round_id(round_))
        if done is not None:
            report(format_metrics(done, config.rounds) + " (finished earlier)")
            metrics.append(done)
            continue
        items = [turn_item(round_, agent, config, questions) for agent in range(config.agents)]
        # the runner reopens failed turns of this round only: finished rounds stay as they are
        await run_items(store, items, partial(run_turn, society=society), concurrency=concurrency,
                        retry_failed=retry_failed, progress=progress)
        m = _end_round(store, society, embedder, round_, [item.id for item in items])
        report(format_metrics(m, config.rounds))
        metrics.append(m)
    return SimulationResult(metrics, bank.size())


def round_records(store: RunStore, round_: int) -> list[SandboxRecord]:
    prefix = f"{round_id(round_)}-"
    return [SandboxRecord.model_validate(rec) for item, rec in store.done_records() if item.id.startswith(prefix)]


def _end_round(store: RunStore, society: Society, embedder: Embedder, round_: int, ids: list[str]) -> dict[str, Any]:
    """Revisions to memory in agent order, then the round's metrics (which mark it finished)."""
    records = round_records(store, round_)
    failed = len(ids) - len(records)
    if not records:
        reasons = dict(store.failures())
        first = reasons.get(ids[0], "unknown")
        raise UserError(
            f"round {round_}: every agent's turn failed (first: {first}); fix the cause and rerun to resume"
        )
    records.sort(key=lambda r: r.agent)
    vectors = _embed_unique(embedder, [r.question for r in records])
    for rec, vector in zip(records, vectors):
        entry = MemoryEntry(rec.question, rec.revision, vector, round_, turn_id(round_, rec.agent))
        society.bank.add(store, rec.agent, 0, entry)
    m = round_metrics(round_, society.config.agents, records, failed)
    store.put_state(ROUNDS_NS, round_id(round_), m)
    return m


def _seed_memories(
    store: RunStore, bank: MemoryBank, stance_of: list[str], stances: StanceSet, embedder: Embedder, config: SandboxConfig
) -> None:
    """Each agent's memory starts with its own seeded sample of `memory_seeds` pairs of its
    stance (round 0), so agents of one stance still differ; done once per run."""
    if store.get_state(META_NS, "seeded"):
        return
    pairs = {s: stances.of(s) for s in set(stance_of)}
    vectors = {s: _embed_unique(embedder, [p.question for p in ps]) for s, ps in pairs.items()}
    for agent, stance in enumerate(stance_of):
        for n, pick in enumerate(seed_sample(len(pairs[stance]), config.memory_seeds, config.seed, agent)):
            pair = pairs[stance][pick]
            entry = MemoryEntry(pair.question, pair.answer, vectors[stance][pick], 0, f"seed:{stance}:{pick}")
            bank.add(store, agent, n, entry)
    store.put_state(META_NS, "seeded", True)


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
