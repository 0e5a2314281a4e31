"""`selfalign self-instruct`: SELF-ALIGN stage 1, topic-guided red-teaming self-instruct beside
plain self-instruct (Sun et al., 2023).

    selfalign self-instruct --model hf:smollm2 --out runs/si1 --per-type 20 --self-instruct 100

Writes OUT/prompts.jsonl (the red-teaming questions with their type and topic, then the
self-instruct instructions; any generator's --prompts reads it) and OUT/summary.json with the
dropped texts counted by reason. Rerunning the same command resumes it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

from selfalign.methods.principles import (
    PROMPTS_DIR,
    SelfInstruct,
    SelfInstructConfig,
    load_red_team_types,
    load_seed_tasks,
    use_raw,
)
from selfalign.methods.prompts import Prompts
from selfalign.runner import run_rounds
from selfalign.store import RunStore
from selfalign.store.export import write_rows
from selfalign.store.files import write_text_atomic

from .generate import EXIT_ALL_DONE, EXIT_SOME_FAILED, add_generator_options, open_model, print_tally

PROMPTS_FILE = "prompts.jsonl"
EXIT_KEPT_NOTHING = 1
RAW_BY_DEFAULT = ("prompt with raw text, as the paper prompts a base model, or --no-raw: as one user message in the "
                  "chat template (default: raw whenever the model completes raw text; on SmolLM2 it keeps more)")
KEEP_MORE_STAGE1 = ("a base model: --raw; a chat model: --no-raw if it was raw; more room per call: --max-tokens; "
                    "more tries: --max-rounds; your own files: --red-team-types, --seeds, --templates")


def kept_nothing(stage: str, dropped: dict[str, int], fix: str) -> str:
    """The message of a stage that kept nothing: the stage, the drops by reason, what to change."""
    reasons = "; ".join(f"{reason} {n}" for reason, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"stage {stage} kept nothing (dropped: {reasons or 'nothing: every call failed'}). What to change: {fix}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "self-instruct",
        help="SELF-ALIGN stage 1: red-teaming and plain self-instruct prompts from a few seeds",
        description="Example: selfalign self-instruct --model hf:smollm2 --out runs/si1 --per-type 5 --self-instruct 20",
    )
    add_generator_options(p, inputs=None)
    add_raw_option(p, RAW_BY_DEFAULT)
    p.add_argument("--red-team-types", default=None, help="JSONL of {name, description, seeds} (default: the 20 shipped types)")
    p.add_argument("--seeds", default=None, help="JSONL of {instruction} seed tasks, or the self-instruct seed format (default: shipped)")
    p.add_argument("--per-type", type=int, default=20, help="red-teaming questions kept per type")
    p.add_argument("--self-instruct", dest="self_instruct", type=int, default=100, help="plain instructions kept in all")
    p.add_argument("--max-rounds", type=int, default=50, help="self-instruct rounds at most")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling")
    p.set_defaults(func=run, temperature=1.0)


def add_raw_option(p: argparse.ArgumentParser, raw_help: str = "prompt with raw text, no chat template, as for a base "
                   "model (default: raw when the model has no chat template)") -> None:
    p.add_argument("--raw", action=argparse.BooleanOptionalAction, default=None,
                   help=raw_help)


def run(args: argparse.Namespace) -> int:
    config = SelfInstructConfig(
        seed=args.seed, raw=args.raw, templates=args.templates, red_team_types_file=args.red_team_types,
        seeds_file=args.seeds, per_type=args.per_type, self_instruct=args.self_instruct, max_rounds=args.max_rounds,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
    )
    # every file is checked before any model call
    types = load_red_team_types(config.red_team_types_file)
    seeds = load_seed_tasks(config.seeds_file)
    prompts = Prompts(PROMPTS_DIR, config.templates)
    store = RunStore(args.out, wait=args.wait)
    try:
        settings = {"model": args.model, "data_sha256": _sha([t.model_dump() for t in types], [s.model_dump() for s in seeds]),
                    **config.model_dump(mode="json")}
        store.check_config("self-instruct", settings)  # before the model loads
        plan = asyncio.run(_run(args, store, config, types, seeds, prompts, settings))
        rows = plan.prompts_rows()
        target = Path(args.out) / PROMPTS_FILE
        write_rows(rows, target)
        summary = _summary(store, plan, rows)
        write_text_atomic(Path(args.out) / "summary.json", json.dumps(summary, indent=2))
    finally:
        store.close()
    print(f"{summary['prompts']} prompts: {summary['red_team']['questions']} red-teaming questions "
          f"({len(summary['red_team']['per_type'])} of {len(types)} types), {summary['self_instruct']} self-instruct tasks")
    if summary["red_team"]["left_out"]:
        print(f"types left out (no topic kept): {', '.join(summary['red_team']['left_out'])}")
    print_tally({"dropped": summary["dropped"]})
    if (config.per_type or config.self_instruct) and not summary["prompts"]:
        print(kept_nothing("self-instruct", summary["dropped"], KEEP_MORE_STAGE1))
        return EXIT_KEPT_NOTHING
    print(f"prompts: {target}")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    then = ["selfalign", "principles", "--model", args.model, "--prompts", str(target), "--out", f"runs/{Path(args.out).name}-principles"]
    print(f"next:    {shlex.join(then)}")
    failed = store_failed(summary)
    if failed:
        print(f"{failed} calls failed: `selfalign export {shlex.quote(args.out)} --failures` lists why")
        return EXIT_SOME_FAILED
    return EXIT_ALL_DONE


async def _run(args, store, config, types, seeds, prompts, settings) -> SelfInstruct:  # type: ignore[no-untyped-def]
    model = open_model(args.model, store, args, plain_format=True)
    try:
        raw = use_raw(config.raw, model, prefer_raw=True)
        store.bind_config("self-instruct", settings)  # once the model has loaded
        plan = SelfInstruct(store, model, config, types, seeds, prompts, raw)
        await run_rounds(store, plan, concurrency=args.concurrency, retry_failed=not args.no_retry_failed,
                         progress=not args.quiet)
        return plan
    finally:
        await model.close()


def _summary(store: RunStore, plan: SelfInstruct, rows: list[dict[str, Any]]) -> dict[str, Any]:
    per_type: dict[str, int] = {}
    for row in rows:
        if row["source"] == "red-team":
            per_type[row["type"]] = per_type.get(row["type"], 0) + 1
    return {
        "method": "self-instruct",
        "prompts": len(rows),
        "red_team": {"questions": sum(per_type.values()), "per_type": per_type, "left_out": plan.left_out()},
        "self_instruct": sum(row["source"] == "self-instruct" for row in rows),
        "dropped": plan.dropped(),
        "rounds": len(store.state_items(plan.namespace)),
        "items": store.counts(),
        "usage": store.usage_totals(),
        "failures": [{"id": i, "reason": r} for i, r in store.failures()],
    }


def store_failed(summary: dict[str, Any]) -> int:
    return summary["items"]["failed"]


def _sha(*values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
