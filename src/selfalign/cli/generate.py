"""What every generator command shares: its options, and the run from inputs to summary.

    selfalign critique-revise --model SPEC --prompts FILE --out DIR [--concurrency 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from selfalign.llm import Model, load_model
from selfalign.runner import RunSummary, run_items
from selfalign.store import RunStore, load_items
from selfalign.store.files import write_text_atomic
from selfalign.store.inputs import Item

MakeRunItem = Callable[[Model], Callable[[Item], Any]]


def add_generator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: hf:PATH, openai:MODEL@URL, vllm:PATH, scripted:FILE")
    p.add_argument("--prompts", required=True, help="inputs: .jsonl/.json/.csv/.txt/.parquet, a datasets folder or hub name")
    p.add_argument("--field", default=None, help="the prompt field or CSV column (default: prompt, or messages)")
    p.add_argument("--out", required=True, help="run folder; rerunning the same command resumes it")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight at once (default 32)")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight at once (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=512, help="per model call")
    p.add_argument("--templates", default=None, help="folder of .j2 prompt files replacing the shipped ones")
    p.add_argument("--device", default=None, help="hf: models: cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--wait", action="store_true", help="if another process writes --out, wait for it instead of stopping")
    p.add_argument("--no-retry-failed", action="store_true", help="on resume, leave failed items failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_generator(args: argparse.Namespace, method: str, config: BaseModel, make_run_item: MakeRunItem) -> RunSummary:
    """Load and check the inputs, open the run, run every item, write and print the summary."""
    items = load_items(args.prompts, field_name=args.field, limit=args.limit)  # fails before any model call
    store = RunStore(args.out, wait=args.wait)  # one writer per run folder
    try:
        store.bind_config(method, {"model": args.model, **config.model_dump(mode="json")})
        summary = asyncio.run(_run(args, store, items, make_run_item))
        _write_summary(store, method, summary)
    finally:
        store.close()
    print(summary.line())
    if summary.failed:
        print(f"{summary.failed} items failed; see `selfalign export {args.out} --failures` or rerun to retry them")
    return summary


async def _run(args: argparse.Namespace, store: RunStore, items: list[Item], make_run_item: MakeRunItem) -> RunSummary:
    model = open_model(args.model, store, args)
    try:
        return await run_items(
            store,
            items,
            make_run_item(model),
            concurrency=args.concurrency,
            retry_failed=not args.no_retry_failed,
            progress=not args.quiet,
        )
    finally:
        await model.close()


def open_model(spec: str, store: RunStore, args: argparse.Namespace) -> Model:
    """The model a run's calls go through: cached in its store, `--max-calls` in flight, and on
    `--device` when it is an hf: model (other providers have no device)."""
    options = {"device": args.device} if args.device and spec.startswith("hf:") else {}
    return load_model(spec, cache=store, max_concurrency=args.max_calls, **options)


def _write_summary(store: RunStore, method: str, summary: RunSummary) -> None:
    data = {
        "method": method,
        "items": store.counts(),
        "seconds_last_session": round(summary.seconds, 2),
        "usage": summary.usage,
        "failures": [{"id": i, "reason": r} for i, r in store.failures()],
    }
    write_text_atomic(Path(store.folder) / "summary.json", json.dumps(data, indent=2))
