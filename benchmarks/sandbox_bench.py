"""Sandbox benchmarks: memory recall at scale, and round throughput against a slow scripted model.

    python benchmarks/sandbox_bench.py                      # 50k memories, a 10 x 10 grid, 2 rounds
    python benchmarks/sandbox_bench.py --memories 100000 --grid 10 --delay 0.2

Recall: one agent holding N memories (random unit vectors plus one planted match), the time of
one query and of the embedding of the query. Throughput: a full simulation with the scripted
provider answering every call after `--delay` seconds, so the figure shows how well the calls
of a round overlap (the sequential bound is 4 dependent calls per agent turn: draft, ratings,
revision, observer). Budgets are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.cli.sandbox import simulate
from selfalign.methods.sandbox import load_stances, make_config
from selfalign.methods.sandbox.embed import LexicalEmbedder
from selfalign.methods.sandbox.memory import AgentMemory, MemoryEntry
from selfalign.store import RunStore


def bench_recall(n: int, queries: int = 200) -> None:
    embedder = LexicalEmbedder()
    rng = np.random.default_rng(0)
    memory = AgentMemory()
    vectors = rng.standard_normal((n, embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    for i, v in enumerate(vectors):
        memory.add(MemoryEntry(f"question {i}", f"answer {i}", v, 0, f"s{i}"))
    target = embedder.embed(["How should I respond to a rude comment online?"])[0]
    memory.add(MemoryEntry("How should I respond to a rude comment online?", "Pause first.", target, 1, "t"))
    fill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(queries):
        query = embedder.embed(["how to respond to a rude online comment"])[0]
        (hit,) = memory.recall(query, k=1, threshold=0.7)
    per = (time.perf_counter() - start) / queries
    assert hit.answer == "Pause first."
    print(f"recall: {len(memory)} memories x {embedder.dim} dims; filled in {fill:.2f}s; "
          f"{per * 1000:.2f} ms per query (embedding included); budget 50 ms -> {'OK' if per < 0.05 else 'OVER'}")


def bench_rounds(grid: int, rounds: int, delay: float, concurrency: int) -> None:
    def respond(request):
        last = request.messages[-1].content
        if "impartial observer" in last:
            return {"alignment": 5, "engagement": 4, "reason": "fine"}
        if "Neighbour's answer:" in last:
            return {"rating": 5, "reason": "fair"}
        return f"An answer ({len(last)} characters of prompt)."

    questions = [p.question for p in load_stances(None).pairs][:16]
    config = make_config(grid=grid, rounds=rounds, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "run")
        model = Model(ScriptedProvider(respond, delay=delay), cache=store, max_concurrency=10_000)
        start = time.perf_counter()
        result = asyncio.run(simulate(store, model, config, questions, load_stances(None), LexicalEmbedder(),
                                      concurrency=concurrency, report=lambda _: None))
        seconds = time.perf_counter() - start
        calls = model.stats.calls
        store.close()
    turns = config.agents * rounds
    floor = rounds * 4 * delay * max(1, -(-config.agents // concurrency))
    print(f"rounds: {grid}x{grid} grid, {rounds} rounds, {turns} turns, {calls} calls at {delay * 1000:.0f} ms each: "
          f"{seconds:.2f}s ({turns / seconds:.1f} turns/s, {calls / seconds:.0f} calls/s); "
          f"ideal with {concurrency} agents at once: {floor:.2f}s; {result.memories} memories at the end")
    print(json.dumps({"seconds": round(seconds, 3), "turns_per_s": round(turns / seconds, 2), "calls": calls}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--memories", type=int, default=50_000)
    p.add_argument("--grid", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--delay", type=float, default=0.05, help="seconds per scripted call")
    p.add_argument("--concurrency", type=int, default=100, help="agents acting at once")
    args = p.parse_args()
    bench_recall(args.memories)
    bench_rounds(args.grid, args.rounds, args.delay, args.concurrency)


if __name__ == "__main__":
    main()
