"""What every generator command shares: its options, and the run from inputs to summary.

    selfalign critique-revise --model SPEC --prompts FILE --out DIR [--concurrency 32] [--seed 0]

Every generator exits 0 when all items are done, 1 when some failed (their reasons are in
the run), 2 on bad usage or input (nothing run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from selfalign.cli.quiet import add_quiet_option
from selfalign.errors import UserError
from selfalign.llm import Model, load_model
from selfalign.llm.ray_pool import RayOptions
from selfalign.llm.types import COMPILE_DECODE_MODES
from selfalign.methods import method_module
from selfalign.runner import RunSummary, run_items
from selfalign.store import Inputs, RunStore, check_inputs
from selfalign.store.files import write_text_atomic
from selfalign.store.inputs import Item

MakeRunItem = Callable[[Model], Callable[[Item], Any]]


#: Exit codes of every generator (documented in the README).
EXIT_ALL_DONE, EXIT_SOME_FAILED = 0, 1  # 2: bad usage or input (selfalign.cli.main)


def add_generator_options(p: argparse.ArgumentParser, *, inputs: str | None = "prompts") -> None:
    """The options every generator shares (critique-revise, matrix, sandbox, the SELF-ALIGN
    stages); `inputs=None` for a generator that reads no prompts (self-instruct)."""
    p.add_argument("--model", required=True, help="model spec: hf:PATH, openai:MODEL@URL[?structured=MODE], vllm:PATH, llamacpp:FILE.gguf, scripted:FILE")
    if inputs is not None:
        p.add_argument("--prompts", "--questions", dest="prompts", required=True, metavar="FILE",
                       help=f"the {inputs}: .jsonl/.json/.csv/.txt/.parquet, a datasets folder or hub name")
        p.add_argument("--field", default=None, help="the prompt field or CSV column (default: prompt, or messages)")
    p.add_argument("--out", required=True, help="run folder; rerunning the same command resumes it")
    if inputs is not None:
        p.add_argument("--limit", type=int, default=None, help=f"only the first N {inputs} (default: all)")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight at once")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight at once")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampled call (a retry uses the next)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the answers")
    p.add_argument("--max-tokens", type=int, default=512, help="tokens per model call (sandbox: per draft)")
    p.add_argument("--templates", default=None, help="folder of .j2 prompt files replacing the shipped ones")
    p.add_argument("--device", default=None, help="hf: models: cpu, cuda, cuda:1 ... (default: cuda if available)")
    add_dtype_option(p)
    add_compile_decode_option(p)
    p.add_argument("--wait", action="store_true", help="if another process writes --out, wait for it instead of stopping")
    p.add_argument("--no-retry-failed", action="store_true", help="on resume, leave failed items failed")
    add_quiet_option(p)
    add_ray_options(p)


def add_ray_options(p: argparse.ArgumentParser) -> None:
    """--ray and the pool's size: the model calls run in Ray actors, the run stays here."""
    g = p.add_argument_group("Ray: the model calls on a pool of actors, each with its own engine (pip install 'selfalign[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the model in Ray actors: no ADDRESS starts a local Ray, 'auto' or ray://HOST:PORT joins a cluster")
    g.add_argument("--actors", type=int, default=1, help="with --ray: actors, each holding the model")
    g.add_argument("--cpus-per-actor", type=float, default=1.0, help="with --ray: CPUs Ray reserves per actor")
    g.add_argument("--gpus-per-actor", type=float, default=0.0, help="with --ray: GPUs per actor (1 for an hf: or vllm: model on a GPU)")


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    if getattr(args, "ray", None) is None:
        return None
    if args.actors < 1:
        raise UserError(f"--actors {args.actors}: at least one")
    return RayOptions(address=None if args.ray == "local" else args.ray, actors=args.actors,
                      cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor)


#: What a method adds to a run's summary, from its done records (e.g. dropped answers by reason).
Tally = Callable[[list[tuple[Item, dict[str, Any]]]], dict[str, Any]]


def run_generator(
    args: argparse.Namespace, method: str, config: BaseModel, make_run_item: MakeRunItem, *,
    tally: Tally | None = None, plain_format: bool = False,
) -> int:
    """Load and check the inputs, open the run, run every item, write and print the summary
    (with the method's `tally` of the records, when it has one); returns the exit code.
    `plain_format`: an hf: model without a chat template loads (for methods that prompt base
    models with raw text)."""
    # every row checked before any model call, none kept: the run reads them again into its store
    items = check_inputs(args.prompts, field_name=args.field, limit=args.limit, field_option="--field")
    store = RunStore(args.out, wait=args.wait)  # one writer per run folder
    try:
        settings = {"model": args.model, **config.model_dump(mode="json")}
        store.check_config(method, settings)  # before the model loads
        bind = lambda: store.bind_config(method, settings)  # noqa: E731
        summary = asyncio.run(_run(args, store, items, make_run_item, bind, plain_format, label=f"{method} items"))
        extra = tally(list(store.done_records())) if tally else {}
        _write_summary(store, method, summary, extra)
    finally:
        store.close()
    print(summary.line())
    print_tally(extra)
    return finish(args.out, method, summary.failed, kept=extra.get("kept", summary.done))


def print_tally(tally: dict[str, Any]) -> None:
    """Counts by reason (or by name), one a line, under their heading."""
    for heading, counts in tally.items():
        if isinstance(counts, int):
            print(f"{heading}: {counts}")
        elif isinstance(counts, dict) and counts:
            print(f"{heading}:")
            for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                print(f"  {n:6d}  {name}")


def finish(out: str, method: str, failed: int, exports: str | None = None, kept: int | None = None) -> int:
    """The closing lines of every generator: where everything is, what to run next (nothing, when
    the run `kept` nothing to export); the exit code."""
    folder = Path(out)
    print(f"run:     {folder / 'run.sqlite'} (rerun the same command to resume)")
    print(f"summary: {folder / 'summary.json'}")
    if exports:
        print(f"exports: {exports}")
    formats = sorted(method_module(method).EXPORTS)
    first = "preference" if "preference" in formats else formats[0]
    to = shlex.quote(f"data/{folder.name}-{first}.jsonl")
    if kept != 0:
        print(f"next:    selfalign export {shlex.quote(out)} --format {first} --to {to}   (formats: {', '.join(formats)})")
    if failed:
        print(f"{failed} items failed: `selfalign export {shlex.quote(out)} --failures` lists why; "
              "rerun the same command to retry them")
        return EXIT_SOME_FAILED
    return EXIT_ALL_DONE


async def _run(
    args: argparse.Namespace, store: RunStore, items: Inputs, make_run_item: MakeRunItem, bind: Callable[[], None],
    plain_format: bool = False, label: str = "items",
) -> RunSummary:
    model = open_model(args.model, store, args, plain_format=plain_format)
    try:
        run_item = make_run_item(model)  # a method's checks against the model come before the folder is bound
        bind()  # only once the model has loaded: a failed load leaves the folder free for other settings
        return await run_items(
            store,
            items,
            run_item,
            concurrency=args.concurrency,
            retry_failed=not args.no_retry_failed,
            progress=not args.quiet,
            label=label,
        )
    finally:
        await model.close()


def add_dtype_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default=None, choices=("auto", "float32", "bfloat16", "float16"),
                   help="hf: models' weights (default auto: float32 on a CPU, the checkpoint's own on a GPU); on a CPU "
                        "with AVX512_BF16, bfloat16 decodes 1.1-1.9x faster, with slightly different texts (docs/benchmarks.md)")


def hf_dtype(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """The `--dtype` provider option, for an hf: model (other providers choose their own)."""
    dtype = getattr(args, "dtype", None)
    return {"dtype": dtype} if dtype and spec.startswith("hf:") else {}


def add_compile_decode_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile-decode", default=None, choices=COMPILE_DECODE_MODES,
                   help="hf: models' decode steps: off (default) as always, or at fixed shapes over a static KV "
                        "cache: graphs (CUDA graphs, a GPU), compile (torch.compile) or eager; not yet measured on a "
                        "GPU (docs/gpu.md)")


def hf_options(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """The provider options of `--dtype` and `--compile-decode`, for an hf: model."""
    mode = getattr(args, "compile_decode", None)
    return hf_dtype(spec, args) | ({"compile_decode": mode} if mode and spec.startswith("hf:") else {})


def open_model(
    spec: str, store: RunStore, args: argparse.Namespace, flag: str = "--model", *, plain_format: bool = False
) -> Model:
    """The model a run's calls go through: cached in its store, `--max-calls` in flight, and on
    `--device` when it is an hf: model (other providers have no device). `plain_format`: an
    hf: model without a chat template loads rather than being refused."""
    options: dict[str, Any] = {"device": args.device} if args.device and spec.startswith("hf:") else {}
    options |= hf_options(spec, args)
    if plain_format and spec.startswith("hf:"):
        options["plain_format"] = True
    try:
        return load_model(spec, cache=store, max_concurrency=args.max_calls, ray=ray_options(args), **options)
    except UserError as exc:  # the provider's own words, which name the spec
        raise UserError(f"{flag} {exc}") from exc
    except (OSError, ValueError) as exc:  # a broken checkpoint, a bad device
        raise UserError(f"{flag} {spec}: cannot load the model: {exc}") from exc


def _write_summary(store: RunStore, method: str, summary: RunSummary, extra: dict[str, Any] | None = None) -> None:
    data = {
        "method": method,
        "items": store.counts(),
        "seconds_last_session": round(summary.seconds, 2),
        "usage": summary.usage,
        **(extra or {}),
        "failures": [{"id": i, "reason": r} for i, r in store.failures()],
    }
    write_text_atomic(Path(store.folder) / "summary.json", json.dumps(data, indent=2))
