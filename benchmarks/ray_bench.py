"""How `--ray` scales over actors, what each model call costs the driver, and how many engines
one driver feeds.

    python benchmarks/ray_bench.py --items 240 --baseline 4e03c77 --out benchmarks/results/ray_dispatch.json

Each item is one critique-revise chain (3 dependent calls) run by the real runner, store and
model wrapper in the driver, as `selfalign critique-revise --ray` runs it; the model is a scripted
one in Ray actors. Three parts, each line with the driver's CPU (all its threads, Ray's
included) per model call and how busy the whole machine was:

1. Scaling: 1, 2 and 4 actors that each answer one call at a time in 50 ms (an engine at its
   capacity, 20 calls/s). Scaling efficiency = items/min with N actors / (N x items/min with one).
2. Ceiling: no latency, 4 actors, then the same items with no Ray: the driver's CPU per call
   through Ray and alone. With `--baseline REV` the Ray ceiling is measured again, in the same
   run, on that commit's code (a subprocess), for the before/after ratio.
3. Saturation: `--engines` engines of 20 calls/s (calls of 50 ms, one at a time per engine)
   hosted as lanes of `--engine-actors` actors, fed by one driver. Engines fed = calls/s / 20.
   Lanes of one actor answer together what was sent together, as a batching engine does; their
   answers share the actor's stream, so a part can carry several engines' answers.

Needs the ray extra (pip install 'selfalign[ray]'). Ray takes one CPU per actor here; on a 2-core
machine the actors share the cores, which is fine for a model that sleeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import ray

from selfalign.llm import Model, load_model
from selfalign.llm.ray_pool import RayOptions, RayPool
from selfalign.methods.critique import CritiqueConfig, load_principles, run_item
from selfalign.methods.critique.steps import PROMPTS_DIR
from selfalign.methods.prompts import Prompts
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items

CALLS_PER_ITEM = 3


def write_inputs(folder: Path, items: int, latency: float) -> tuple[str, Path]:
    rules = folder / f"rules-{latency}.jsonl"
    rules.write_text("".join(json.dumps({"match": m, "reply": r, "delay": latency}) + "\n" for m, r in (
        ("Critique", "It could be kinder."), ("new answer", "A kinder answer."), ("", "A first answer."))))
    prompts = folder / f"prompts-{items}.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Question {i}: how should I answer a friend?"}) + "\n" for i in range(items)))
    return f"scripted:{rules}", prompts


def busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


async def run_once(model: Model, prompts: Path, out: Path, concurrency: int = 256) -> dict[str, float]:
    """One critique-revise run through the runner and the store: items/min, calls/s, the
    driver's CPU per call, how busy the machine was, and how the pool batched (if on Ray)."""
    config = CritiqueConfig(seed=0, temperature=0.0, max_tokens=64)
    items = load_items(prompts)
    store = RunStore(out)
    pool = model.provider if isinstance(model.provider, RayPool) else None
    try:
        store.bind_config("critique-revise", config.model_dump(mode="json"))
        work = partial(run_item, model=model, config=config, principles=load_principles(None), prompts=Prompts(PROMPTS_DIR, None))
        start, cpu, (busy, total) = time.perf_counter(), time.process_time(), busy_cores()
        await run_items(store, items, work, concurrency=concurrency, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        busy, total = (b - a for a, b in zip((busy, total), busy_cores()))
    finally:
        store.close()
        await model.close()
    calls = CALLS_PER_ITEM * len(items)
    figures = {"items_per_min": len(items) / seconds * 60, "calls_per_s": calls / seconds,
               "driver_core_share": cpu / seconds, "driver_ms_per_call": cpu / calls * 1000, "machine_busy": busy / total}
    if pool is not None and getattr(pool, "batches", 0):  # a pool before batching has no counters
        figures |= {"calls_per_batch": calls / pool.batches, "answers_per_part": calls / pool.parts}
    return {k: round(v, 4) for k, v in figures.items()}


def load_text(f: dict[str, float]) -> str:
    batching = (f"; {f['calls_per_batch']:.1f} calls per batch, {f['answers_per_part']:.1f} answers per part"
                if "calls_per_batch" in f else "")
    return (f"driver CPU {f['driver_core_share']:.0%} of a core, {f['driver_ms_per_call']:.3f} ms per call{batching};"
            f" machine {f['machine_busy']:.0%} busy")


def pooled(spec: str, actors: int, calls_per_actor: int) -> Model:
    return Model(RayPool(spec, RayOptions(actors=actors, cpus_per_actor=1, calls_per_actor=calls_per_actor)), max_concurrency=100_000)


def scaling(folder: Path, counts: list[int], items: int, latency: float) -> dict[str, dict[str, float]]:
    spec, prompts = write_inputs(folder, items, latency)
    lines = {}
    for n in counts:
        f = asyncio.run(run_once(pooled(spec, n, 1), prompts, folder / f"ray{n}"))
        ideal = n * 60 / (CALLS_PER_ITEM * latency)
        f["of_ideal"] = round(f["items_per_min"] / ideal, 3)
        f["scaling_efficiency"] = round(f["items_per_min"] / (n * lines.get(counts[0], f)["items_per_min"] / counts[0]), 3)
        lines[n] = f
        print(f"{n} actor(s): {f['items_per_min']:8.1f} items/min (ideal {ideal:.0f}: {f['of_ideal']:.2f});"
              f" scaling efficiency {f['scaling_efficiency']:.2f}; {load_text(f)}", flush=True)
    return {str(n): f for n, f in lines.items()}


def ceiling(folder: Path, items: int, actors: int = 4) -> dict[str, float]:
    """The most one driver sends through Ray: no latency, many calls per actor at once."""
    spec, prompts = write_inputs(folder, items, 0.0)
    return asyncio.run(run_once(pooled(spec, actors, 256), prompts, folder / "ray-ceiling"))


def baseline_ceiling(rev: str, items: int) -> dict[str, float]:
    """`ceiling` on the code of commit `rev`, in a subprocess (its pool, this script)."""
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "archive", rev, "src"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": f"{tree}/src"}
        out = subprocess.run([sys.executable, __file__, "--ceiling-only", "--ceiling-items", str(items)], env=env,
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def saturation(folder: Path, engines: int, engine_actors: int, items: int, latency: float) -> dict[str, float]:
    spec, prompts = write_inputs(folder, items, latency)
    lanes = -(-engines // engine_actors)
    f = asyncio.run(run_once(pooled(spec, engine_actors, lanes), prompts, folder / "saturation", concurrency=2 * engines))
    f["engines_fed"] = round(f["calls_per_s"] * latency, 1)
    f["engines_one_core_feeds"] = round(1000 / f["driver_ms_per_call"] * latency, 1)
    return f


def record(path: Path, entry: dict) -> None:
    """Append `entry` to the list of runs in `path` (the rest of the file kept)."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results["runs"] = [*results.get("runs", []), entry]
    path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call in an actor")
    parser.add_argument("--engines", type=int, default=256, help="engines of 1/latency calls/s for the saturation part")
    parser.add_argument("--engine-actors", type=int, default=8, help="actors hosting those engines")
    parser.add_argument("--saturation-items", type=int, default=8000)
    parser.add_argument("--ceiling-items", type=int, default=3000)
    parser.add_argument("--baseline", help="a commit whose Ray ceiling to measure in the same run")
    parser.add_argument("--out", type=Path, help="JSON file to append this run to")
    parser.add_argument("--ceiling-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ray.init(num_cpus=max([*args.actors, args.engine_actors]), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.ceiling_only:
            print(json.dumps(ceiling(folder, args.ceiling_items)))
            return
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        entry = {"command": " ".join(["python", "benchmarks/ray_bench.py", *sys.argv[1:]]), "commit": commit,
                 "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before"}
        print(entry["machine"], flush=True)
        try:
            run_all(folder, args, entry)
        except Exception as exc:  # a failed run is recorded too
            entry["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            entry["load_average_after"] = round(os.getloadavg()[0], 1)
            ray.shutdown()
            if args.out:
                record(args.out, entry)


def run_all(folder: Path, args: argparse.Namespace, entry: dict) -> None:
    entry["scaling"] = scaling(folder, args.actors, args.items, args.latency)
    entry["ceiling_ray"] = f = ceiling(folder, args.ceiling_items)
    print(f"4 actors, no latency: {f['calls_per_s']:.0f} calls/s through Ray; {load_text(f)}", flush=True)
    spec, prompts = write_inputs(folder, args.ceiling_items, 0.0)
    entry["ceiling_alone"] = alone = asyncio.run(run_once(load_model(spec, max_concurrency=100_000), prompts, folder / "alone"))
    ratio = f["driver_ms_per_call"] / alone["driver_ms_per_call"]
    print(f"no Ray: {alone['calls_per_s']:.0f} calls/s; {load_text(alone)}; through Ray / alone: {ratio:.2f}x CPU per call", flush=True)
    entry["ray_over_alone_cpu_per_call"] = round(ratio, 2)
    if args.baseline:
        entry["baseline"] = args.baseline
        entry["ceiling_ray_baseline"] = b = baseline_ceiling(args.baseline, args.ceiling_items)
        speedup = b["driver_ms_per_call"] / f["driver_ms_per_call"]
        entry["cpu_per_call_before_over_after"] = round(speedup, 2)
        print(f"{args.baseline} (before), same ceiling: {b['calls_per_s']:.0f} calls/s; {load_text(b)};"
              f" before / now: {speedup:.2f}x CPU per call", flush=True)
    entry["saturation"] = s = saturation(folder, args.engines, args.engine_actors, args.saturation_items, args.latency)
    print(f"{args.engines} engines of {1 / args.latency:.0f} calls/s on {args.engine_actors} actors: {s['calls_per_s']:.0f} calls/s,"
          f" {s['engines_fed']:.0f} engines fed ({s['engines_fed'] / args.engines:.2f} of them); {load_text(s)};"
          f" at that CPU per call one full core feeds {s['engines_one_core_feeds']:.0f} engines", flush=True)


if __name__ == "__main__":
    main()
