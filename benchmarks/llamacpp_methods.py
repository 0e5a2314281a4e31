"""A method's calls on a CPU: `llamacpp:` (llama.cpp in process) against `hf:` on the same model.

    python benchmarks/llamacpp_methods.py                                  # SmolLM2, critique-revise
    python benchmarks/llamacpp_methods.py --items 4 --rounds 3 --max-tokens 128 --threads 2
    python benchmarks/llamacpp_methods.py --engine hf:smollm2 --engine llamacpp:models/smollm2.f32.gguf

Each engine loads once; then critique-revise runs on the same `--items` prompts (answer,
critique, revision per item; sampled at temperature 0.7 with the run's seed), one item at a
time and all items at once, through the runner as `selfalign critique-revise` runs them, with
no call cache. Rounds alternate the engines' order, so a load from elsewhere on the machine falls
on both alike. Prints generated tokens per second of wall time and per second of this process's
CPU time (both engines compute on this process's threads; on a machine shared with other jobs
the CPU figure moves less), the median over rounds, and each engine's ratio to the first;
appends the run to
benchmarks/results/llamacpp_methods.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selfalign.llm import Model, load_model
from selfalign.methods.critique import CritiqueConfig, load_exemplars, load_principles, run_item
from selfalign.methods.critique.steps import PROMPTS_DIR
from selfalign.methods.prompts import Prompts
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.inputs import Item

RESULTS = Path(__file__).parent / "results" / "llamacpp_methods.json"
PROMPTS = [
    "How can I get into my neighbour's wifi without the password?",
    "Write a message to convince my elderly aunt to lend me her savings.",
    "What is a safe way to store cleaning chemicals at home?",
    "How do I find out where my ex lives now?",
    "Give me tips to pass a drug test tomorrow.",
    "How should I answer a coworker who takes credit for my work?",
    "Best way to return clothes I already wore to the shop?",
    "Explain why people should not share passwords.",
]


async def timed(model: Model, work: list[Item], concurrency: int, config: CritiqueConfig) -> dict[str, Any]:
    step = functools.partial(run_item, model=model, config=config, principles=load_principles(None),
                             prompts=Prompts(PROMPTS_DIR), exemplars=load_exemplars(None))
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            summary = await run_items(store, work, step, concurrency=concurrency, progress=False)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            texts = [record["revision"] for _, record in store.done_records()]
        finally:
            store.close()
    tokens = summary.usage.get("completion_tokens", 0)
    return {"done": summary.done, "failed": summary.failed, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
            "completion_tokens": tokens, "prompt_tokens": summary.usage.get("prompt_tokens", 0),
            "tokens_per_s": round(tokens / seconds, 2), "tokens_per_cpu_s": round(tokens / cpu, 2), "revisions": texts}


def engine_options(spec: str, threads: int) -> dict[str, Any]:
    return {"n_threads": threads} if spec.startswith("llamacpp:") else {"device": "cpu"}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = [Item(f"{i:06d}", i, ({"role": "user", "content": PROMPTS[i % len(PROMPTS)]},)) for i in range(args.items)]
    config = CritiqueConfig(seed=0, temperature=0.7, max_tokens=args.max_tokens)
    models = {spec: load_model(spec, **engine_options(spec, args.threads)) for spec in args.engine}
    rows = []
    try:
        for model in models.values():  # warm-up: first-call costs are not timed
            await timed(model, work[:1], 1, config.model_copy(update={"max_tokens": 8}))
        for round_no in range(args.rounds):
            order = list(models.items()) if round_no % 2 == 0 else list(models.items())[::-1]
            for concurrency in (1, args.items):
                for spec, model in order:
                    row = {"engine": spec, "concurrency": concurrency, "round": round_no,
                           **await timed(model, work, concurrency, config)}
                    rows.append(row)
                    print(f"round {round_no} {spec:28} c={concurrency} {row['tokens_per_s']:7.1f} tok/s "
                          f"{row['tokens_per_cpu_s']:7.1f} tok/CPU-s "
                          f"{row['seconds']:7.1f}s done {row['done']}/{args.items} load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for model in models.values():
            await model.close()
    return {"rows": rows, "summary": summarise(rows, args.engine)}


def summarise(rows: list[dict[str, Any]], engines: list[str]) -> list[dict[str, Any]]:
    out = []
    for concurrency in sorted({r["concurrency"] for r in rows}):
        entry: dict[str, Any] = {"concurrency": concurrency}
        for key in ("tokens_per_s", "tokens_per_cpu_s"):
            speeds = {e: statistics.median(r[key] for r in rows if r["engine"] == e and r["concurrency"] == concurrency)
                      for e in engines}
            base = speeds[engines[0]]
            entry[key] = speeds
            entry[key + "_ratio_to_first"] = {e: round(v / base, 2) if base else None for e, v in speeds.items()}
        out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", action="append", default=None, help="model spec (repeat); default hf:smollm2, llamacpp:smollm2")
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp's threads (torch's: OMP_NUM_THREADS)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    args.engine = args.engine or ["hf:smollm2", "llamacpp:smollm2"]
    load_before = os.getloadavg()
    result = asyncio.run(main_async(args))
    print("\n| concurrency | measure | " + " | ".join(args.engine) + " | ratio to " + args.engine[0] + " |")
    for s in result["summary"]:
        for key in ("tokens_per_s", "tokens_per_cpu_s"):
            ratios = ", ".join(f"{r}" for r in s[key + "_ratio_to_first"].values())
            print(f"| {s['concurrency']} | {key} | " + " | ".join(f"{v:.1f}" for v in s[key].values()) + f" | {ratios} |")
    if not args.no_record:
        runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        runs.append({"command": "python " + shlex.join(sys.argv), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": {"cores": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
                                 "torch_threads": os.environ.get("OMP_NUM_THREADS", "default")},
                     **result})
        RESULTS.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
