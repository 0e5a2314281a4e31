"""What every generator command shares: its options, and the run from inputs to summary.

    selfalign critique-revise --model SPEC --prompts FILE --out DIR [--concurrency 32] [--seed 0]

Every generator exits 0 when all items are done, 1 when some failed (their reasons are in
the run), 2 on bad usage or input (nothing run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.llm import Model, load_model
from selfalign.methods import method_module
from selfalign.runner import RunSummary, run_items
from selfalign.store import RunStore, load_items
from selfalign.store.files import write_text_atomic
from selfalign.store.inputs import Item

MakeRunItem = Callable[[Model], Callable[[Item], Any]]


#: Exit codes of every generator (documented in the README).
EXIT_ALL_DONE, EXIT_SOME_FAILED = 0, 1  # 2: bad usage or input (selfalign.cli.main)


def add_generator_options(p: argparse.ArgumentParser, *, inputs: str = "prompts") -> None:
    """The options every generator shares (critique-revise, matrix, sandbox)."""
    p.add_argument("--model", required=True, help="model spec: hf:PATH, openai:MODEL@URL[?structured=MODE], vllm:PATH, scripted:FILE")
    p.add_argument("--prompts", "--questions", dest="prompts", required=True, metavar="FILE",
                   help=f"the {inputs}: .jsonl/.json/.csv/.txt/.parquet, a datasets folder or hub name")
    p.add_argument("--field", default=None, help="the prompt field or CSV column (default: prompt, or messages)")
    p.add_argument("--out", required=True, help="run folder; rerunning the same command resumes it")
    p.add_argument("--limit", type=int, default=None, help=f"only the first N {inputs} (default: all)")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight at once")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight at once")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampled call (a retry uses the next)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the answers")
    p.add_argument("--max-tokens", type=int, default=512, help="tokens per model call (sandbox: per draft)")
    p.add_argument("--templates", default=None, help="folder of .j2 prompt files replacing the shipped ones")
    p.add_argument("--device", default=None, help="hf: models: cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--wait", action="store_true", help="if another process writes --out, wait for it instead of stopping")
    p.add_argument("--no-retry-failed", action="store_true", help="on resume, leave failed items failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_generator(args: argparse.Namespace, method: str, config: BaseModel, make_run_item: MakeRunItem) -> int:
    """Load and check the inputs, open the run, run every item, write and print the summary;
    returns the exit code."""
    items = load_items(args.prompts, field_name=args.field, limit=args.limit)  # fails before any model call
    store = RunStore(args.out, wait=args.wait)  # one writer per run folder
    try:
        settings = {"model": args.model, **config.model_dump(mode="json")}
        summary = asyncio.run(_run(args, store, items, make_run_item, lambda: store.bind_config(method, settings)))
        _write_summary(store, method, summary)
    finally:
        store.close()
    print(summary.line())
    return finish(args.out, method, summary.failed)


def finish(out: str, method: str, failed: int, exports: str | None = None) -> int:
    """The closing lines of every generator: where everything is, what to run next; the exit code."""
    folder = Path(out)
    print(f"run:     {folder / 'run.sqlite'} (rerun the same command to resume)")
    print(f"summary: {folder / 'summary.json'}")
    if exports:
        print(f"exports: {exports}")
    formats = sorted(method_module(method).EXPORTS)
    first = "preference" if "preference" in formats else formats[0]
    print(f"next:    selfalign export {out} --format {first} --to data/{folder.name}-{first}.jsonl"
          f"   (formats: {', '.join(formats)})")
    if failed:
        print(f"{failed} items failed: `selfalign export {out} --failures` lists why; rerun the same command to retry them")
        return EXIT_SOME_FAILED
    return EXIT_ALL_DONE


async def _run(
    args: argparse.Namespace, store: RunStore, items: list[Item], make_run_item: MakeRunItem, bind: Callable[[], None]
) -> RunSummary:
    model = open_model(args.model, store, args)
    try:
        bind()  # only once the model has loaded: a failed load leaves the folder free for other settings
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


def open_model(spec: str, store: RunStore, args: argparse.Namespace, flag: str = "--model") -> Model:
    """The model a run's calls go through: cached in its store, `--max-calls` in flight, and on
    `--device` when it is an hf: model (other providers have no device)."""
    options = {"device": args.device} if args.device and spec.startswith("hf:") else {}
    try:
        return load_model(spec, cache=store, max_concurrency=args.max_calls, **options)
    except UserError as exc:  # the provider's own words, which name the spec
        raise UserError(f"{flag} {exc}") from exc
    except (OSError, ValueError) as exc:  # a broken checkpoint, a bad device
        raise UserError(f"{flag} {spec}: cannot load the model: {exc}") from exc


def _write_summary(store: RunStore, method: str, summary: RunSummary) -> None:
    data = {
        "method": method,
        "items": store.counts(),
        "seconds_last_session": round(summary.seconds, 2),
        "usage": summary.usage,
        "failures": [{"id": i, "reason": r} for i, r in store.failures()],
    }
    write_text_atomic(Path(store.folder) / "summary.json", json.dumps(data, indent=2))
