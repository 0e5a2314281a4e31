"""`selfalign sandbox`: a grid of agents gives each other social feedback (Liu et al., 2023).

    selfalign sandbox --model SPEC --questions q.jsonl --grid 10 --rounds 4 --out runs/s1

Rerunning the same command resumes the simulation where it stopped. At the end it writes
OUT/data/groups.jsonl (imitation, self-critic and realignment mixed --mix), preference.jsonl
and sft.jsonl, and OUT/summary.json with the per-round metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.sandbox import STANCES, SandboxConfig, export_run, load_stances, make_config, parse_mix, start_simulation
from selfalign.methods.sandbox.backscatter import PROMPTS_DIR
from selfalign.methods.sandbox.embed import Embedder, load_embedder
from selfalign.methods.sandbox.stances import StanceSet
from selfalign.runner import run_rounds
from selfalign.store import RunStore, load_items
from selfalign.store.export import write_rows
from selfalign.store.files import write_text_atomic

from .generate import add_generator_options, finish, open_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="simulate a grid of agents giving each other social feedback (Stable Alignment data)",
        description="Example: selfalign sandbox --model hf:/tmp/tiny --prompts examples/questions.jsonl --grid 3 --rounds 2 --out runs/s1",
    )
    add_generator_options(p, inputs="questions")
    p.add_argument("--grid", type=int, default=10, help="grid size N: N x N agents (default 10, as in the paper)")
    p.add_argument("--rounds", type=int, default=4, help="back-scatter rounds (default 4)")
    p.add_argument("--stance", choices=STANCES, default="mixed_half_half", help="initial stances (default mixed_half_half)")
    p.add_argument("--stances", default=None, help='JSONL of {"stance": "good"|"bad", "question", "answer"} seeding memories (default: shipped set)')
    p.add_argument("--radius", type=float, default=None, help="social radius, Euclidean (default grid/2)")
    p.add_argument("--raters", type=int, default=4, help="neighbours rating each draft (default 4)")
    p.add_argument("--observer-model", default=None, help="model spec of the observers (default: the agents' model)")
    p.add_argument("--memory-threshold", type=float, default=0.3,
                   help="min cosine similarity to recall a memory (default 0.3, measured for the lexical embedder; "
                        "for another, measure with benchmarks/memory_threshold.py --embedder)")
    p.add_argument("--memory-k", type=int, default=1, help="memories recalled per question (default 1)")
    p.add_argument("--memory-seeds", type=int, default=50, help="stance pairs sampled into each agent's memory (default 50)")
    p.add_argument("--embedder", default="lexical", help="lexical, lexical:DIM, or st:MODEL (pip install 'selfalign[embeddings]')")
    p.add_argument("--revision-max-tokens", type=int, default=2048, help="tokens per revision")
    p.add_argument("--judge-temperature", type=float, default=0.0, help="temperature of neighbours' and observers' ratings")
    p.add_argument("--judge-max-tokens", type=int, default=256, help="tokens per rating")
    p.add_argument("--mix", default="5:1:1", help="imitation:self-critic:realignment in data/groups.jsonl (default 5:1:1), or 'all'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # everything is checked before any model call
    config = make_config(
        grid=args.grid, rounds=args.rounds, stance=args.stance, stances_file=args.stances, radius=args.radius,
        raters=args.raters, memory_threshold=args.memory_threshold, memory_k=args.memory_k, memory_seeds=args.memory_seeds, embedder=args.embedder,
        seed=args.seed, temperature=args.temperature, max_tokens=args.max_tokens,
        revision_max_tokens=args.revision_max_tokens,
        judge_temperature=args.judge_temperature, judge_max_tokens=args.judge_max_tokens, templates=args.templates,
    )
    try:
        ratio = parse_mix(args.mix)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    items = load_items(args.prompts, field_name=args.field, limit=args.limit, field_option="--field")
    questions = [item.prompt for item in items]
    stances = load_stances(config.stances_file)
    prompts = Prompts(PROMPTS_DIR, config.templates)
    embedder = load_embedder(config.embedder)

    store = RunStore(args.out, wait=args.wait)  # one writer per run folder
    try:
        settings = {
            "model": args.model,
            "observer_model": args.observer_model or args.model,
            "questions_sha256": _sha(json.dumps(questions)),
            "stances_sha256": _sha(stances.text),
            **config.model_dump(mode="json"),
        }
        store.check_config("sandbox", settings)  # before the models load
        bind = lambda: store.bind_config("sandbox", settings)  # noqa: E731
        result = asyncio.run(_simulate(args, store, config, questions, stances, embedder, prompts, bind))
        exported = export_run(store.done_records(), ratio, config.seed)
        data = Path(args.out) / "data"
        write_rows(exported.groups, data / "groups.jsonl")
        write_rows(exported.preference, data / "preference.jsonl")
        write_rows(exported.sft, data / "sft.jsonl")
        counts = store.counts()
        summary = {
            "method": "sandbox",
            "items": counts,
            "rounds": result.metrics,
            "memories": result.memories,
            "usage": store.usage_totals(),
            "exports": {"groups": exported.kept, "preference": len(exported.preference), "sft": len(exported.sft)},
            "excluded": dict(sorted(exported.excluded.items())),
            "failures": [{"id": i, "reason": r} for i, r in store.failures()],
        }
        write_text_atomic(Path(args.out) / "summary.json", json.dumps(summary, indent=2))
    finally:
        store.close()
    kept = exported.kept
    print(
        f"{counts['done']} turns done, {counts['failed']} failed; {result.memories} memories. "
        f"Wrote {len(exported.groups)} groups ({kept['imitation']} imitation, {kept['self_critic']} self-critic, "
        f"{kept['realignment']} realignment; mix {args.mix}), {len(exported.preference)} preference pairs and "
        f"{len(exported.sft)} SFT rows to {data}/"
    )
    for reason, n in sorted(exported.excluded.items()):
        print(f"  excluded {n:6d}  {reason}")
    return finish(args.out, "sandbox", counts["failed"], exports=f"{data}/ (groups.jsonl, preference.jsonl, sft.jsonl)")


async def _simulate(args, store, config, questions, stances, embedder, prompts, bind):  # type: ignore[no-untyped-def]
    model = open_model(args.model, store, args)
    observer = None
    try:
        if args.observer_model and args.observer_model != args.model:
            observer = open_model(args.observer_model, store, args, flag="--observer-model")
        bind()  # only once the models have loaded: a failed load leaves the folder free
        return await simulate(
            store, model, config, questions, stances, embedder, observer=observer, prompts=prompts,
            concurrency=args.concurrency, retry_failed=not args.no_retry_failed, progress=not args.quiet,
        )
    finally:
        await model.close()
        if observer is not None:
            await observer.close()


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
    """A whole simulation into `store`, resuming where a previous run stopped."""
    simulation = start_simulation(store, model, config, questions, stances, embedder, observer=observer, prompts=prompts)
    metrics = await run_rounds(store, simulation, concurrency=concurrency, retry_failed=retry_failed,
                               progress=progress, report=report)
    return SimulationResult(metrics, simulation.memories())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
