"""Items per minute with the model on 1, 2 and 4 Ray actors (`--ray --actors N`), and where the
driver saturates.

Each actor stands for one engine at its capacity: a scripted model with 50 ms latency that
answers one call at a time (`calls_per_actor=1`), so N actors can answer at most N x 20 calls/s.
Each item is one critique-revise chain (3 dependent calls) run by the real runner, store and
model wrapper in the driver, as `selfalign critique-revise --ray` runs it. Scaling efficiency =
items/min with N actors / (N x items/min with one). The driver-only line runs the same items
against the same scripted model in the driver with no latency: the most a single driver can do.
Each line also gives the driver's CPU (share of one core, per model call) and how busy the whole
machine was, to tell a saturated driver from cores shared with the actors.

    python benchmarks/ray_bench.py                   # 1, 2, 4 actors, 120 items each
    python benchmarks/ray_bench.py --actors 1 2 4 8 --items 240 --latency 0.05

Needs the ray extra (pip install 'selfalign[ray]'). Ray takes one CPU per actor here; on a
2-core machine 4 actors share the cores, which is fine for a model that sleeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def write_inputs(folder: Path, items: int, latency: float) -> tuple[str, Path]:
    rules = folder / "rules.jsonl"
    rules.write_text("".join(json.dumps({"match": m, "reply": r, "delay": latency}) + "\n" for m, r in (
        ("Critique", "It could be kinder."), ("new answer", "A kinder answer."), ("", "A first answer."))))
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Question {i}: how should I answer a friend?"}) + "\n" for i in range(items)))
    return f"scripted:{rules}", prompts


def busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


async def run_once(model: Model, prompts: Path, out: Path) -> tuple[float, str]:
    """Items per minute of one critique-revise run through the runner and the store, and how
    busy the driver and the machine were meanwhile."""
    config = CritiqueConfig(seed=0, temperature=0.0, max_tokens=64)
    items = load_items(prompts)
    store = RunStore(out)
    try:
        store.bind_config("critique-revise", config.model_dump(mode="json"))
        work = partial(run_item, model=model, config=config, principles=load_principles(None), prompts=Prompts(PROMPTS_DIR, None))
        start, cpu, (busy, total) = time.perf_counter(), time.process_time(), busy_cores()
        await run_items(store, items, work, concurrency=256, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        busy, total = (b - a for a, b in zip((busy, total), busy_cores()))
    finally:
        store.close()
        await model.close()
    calls = 3 * len(items)
    load = (f"driver CPU {cpu / seconds:.0%} of a core, {cpu / calls * 1000:.2f} ms per call;"
            f" machine {busy / total:.0%} busy")
    return len(items) / seconds * 60, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call in an actor")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ray.init(num_cpus=max(args.actors), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, prompts = write_inputs(folder, args.items, args.latency)
        rates = {}
        for n in args.actors:
            pool = RayPool(spec, RayOptions(actors=n, cpus_per_actor=1, calls_per_actor=1))
            rates[n], load = asyncio.run(run_once(Model(pool, max_concurrency=1024), prompts, folder / f"ray{n}"))
            ideal = n * 60 / (3 * args.latency)
            print(f"{n} actor(s): {rates[n]:8.1f} items/min  (ideal {ideal:.0f}: {rates[n] / ideal:.2f});"
                  f" scaling efficiency {rates[n] / (n * rates[args.actors[0]] / args.actors[0]):.2f}; {load}")
        fast, _ = write_inputs(folder, args.items, 0.0)
        pool = RayPool(fast, RayOptions(actors=max(args.actors), cpus_per_actor=1, calls_per_actor=256))
        through_ray, load = asyncio.run(run_once(Model(pool, max_concurrency=1024), prompts, folder / "ray-ceiling"))
        print(f"{max(args.actors)} actors, no latency: {through_ray:8.1f} items/min ({through_ray * 3 / 60:.0f} calls/s): "
              f"the most one driver sends through Ray; {load}")
        driver, load = asyncio.run(run_once(load_model(fast, max_concurrency=1024), prompts, folder / "driver"))
        print(f"driver alone (no latency, no Ray): {driver:8.1f} items/min: the runner, store and wrapper alone; {load}")
    ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
