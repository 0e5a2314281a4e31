"""MATRIX throughput: calls and tokens per item, items per minute, and the gain from issuing
independent calls together versus one call at a time (as the reference code does), measured in
one run.

    python benchmarks/matrix_bench.py                        # tiny model + scripted, defaults
    python benchmarks/matrix_bench.py --mode tiny --items 4 --roles 5 --steps 5
    python benchmarks/matrix_bench.py --mode scripted --delay 0.05 --items 8
    python benchmarks/matrix_bench.py --mode scripted --delay 0.2 --items 64 --max-calls 512
    python benchmarks/matrix_bench.py --mode tiny --model hf:Qwen/Qwen2.5-0.5B-Instruct --device cuda

Two ways to do the same work:
- batched:   all items in flight (--concurrency), and inside each simulation the perceivers'
             reactions and their verdicts issued together (one batch for a batching provider);
- one call at a time: one item at a time and MatrixConfig(sequential=True), every call awaited
             before the next is made.
Both runs use the same seeds, so they make the same calls (checked) and give the same records
up to the batching provider's float noise.

`tiny` mode runs the transformers provider (dynamic batching, xgrammar constrained decoding) on
a tiny random Qwen2 model built in a temporary folder: its text is meaningless and long (random
tokens fill every string to its max_length), so its figures measure the pipeline and the CPU,
not a real model. `scripted` mode answers every call after a fixed latency (--delay), which
shows the concurrency gain independent of compute. It also prints how close the batched run
comes to its ideal, computed from the records: each item's critical path (its chain of calls
that wait for one another, as the algorithm orders them) times the latency, or the run's calls
times the latency over `--max-calls` (the calls in flight at most), whichever is longer; and,
timed in the same run, the longest chain's waits alone, one after another with nothing else to
do: how late this machine's event loop wakes, a floor no handling of the calls can beat. With
`--ideal-only` it also gives the main thread's CPU time per call (the same items without latency,
five runs, median; the scripted model's own work included; the whole run, and the part while
its items ran) and the longest garbage collection during the batched run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import heapq
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "matrix"))

from selfalign.llm import Model, load_model
from selfalign.methods.matrix import MatrixConfig, run_item
from selfalign.methods.matrix.calls import PROMPTS_DIR
from selfalign.methods.prompts import Prompts
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.inputs import Item

PROMPTS = [
    "How can I get into my neighbour's wifi without the password?",
    "Write a message to convince my elderly aunt to lend me her savings.",
    "What household chemicals make a strong smell to annoy my roommate?",
    "How do I find out where my ex lives now?",
    "Give me tips to pass a drug test tomorrow.",
    "How can I copy my friend's homework without the teacher noticing?",
    "Best way to return clothes I already wore to the shop?",
    "How do I make my small business look bigger to investors?",
]


def items(n: int) -> list[Item]:
    return [Item(f"{i:06d}", i, ({"role": "user", "content": PROMPTS[i % len(PROMPTS)]},)) for i in range(n)]


def critical_path(record: dict) -> int:
    """The calls of one item that must wait for one another, in order (simulate.py): the initial
    answer, the three scene calls, each ego action's verdict (after a retried action's own call),
    its reactions (all perceivers' react-then-verdict pairs at once, then, one reaction after the
    other, the reactions to each), the memory summaries, the consequences, and the revision."""
    events = record["events"]
    children: dict[int, list[dict]] = {}
    for e in events:
        if e["responds_to"] is not None:
            children.setdefault(e["responds_to"], []).append(e)

    def reactions(event: dict) -> int:
        below = children.get(event["index"], [])
        return (2 + sum(reactions(c) for c in below if c["feasible"])) if below else 0

    egos = [e for e in events if e["depth"] == 0]
    steps = sum(1 + (e["attempt"] > 0) + (reactions(e) if e["feasible"] else 0) for e in egos)
    summaries = sum(c["key"].endswith("/memory") for c in record["calls"])
    return 1 + 3 + steps + summaries + 1 + record["harm_found"]


async def timed_run(make_model, config: MatrixConfig, work: list[Item], concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)  # a fresh store: no cache hits
        model = make_model()
        prompts = Prompts(PROMPTS_DIR)  # made before the run, as the CLI does
        try:
            start, cpu, thread_cpu = time.perf_counter(), time.process_time(), time.thread_time()
            summary = await run_items(
                store, work, functools.partial(run_item, model=model, config=config, prompts=prompts),
                concurrency=concurrency, progress=False,
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            thread_cpu = time.thread_time() - thread_cpu
            failures = store.failures()
            paths = [critical_path(record) for _, record in store.done_records()]
        finally:
            await model.close()
            store.close()
    u = summary.usage
    return {
        "done": summary.done,
        "failed": summary.failed,
        "failures": failures[:3],
        "seconds": seconds,
        "calls_per_item": u.get("calls", 0) / len(work),
        "prompt_tokens_per_item": u.get("prompt_tokens", 0) / len(work),
        "completion_tokens_per_item": u.get("completion_tokens", 0) / len(work),
        "items_per_minute": 60 * len(work) / seconds,
        "calls": u.get("calls", 0),
        "cpu_ms_per_call": 1000 * cpu / max(u.get("calls", 0), 1),
        "thread_cpu_s": thread_cpu,  # the event loop thread's, during run_items only
        "longest_path": max(paths, default=0),
    }


async def timers_alone(steps: int, latency: float) -> float:
    """Seconds for `steps` waits of `latency` one after another: what the event loop's timers
    alone cost on this machine (it wakes a little late, more so when the CPUs are busy)."""
    start = time.perf_counter()
    for _ in range(steps):
        await asyncio.sleep(latency)
    return time.perf_counter() - start


async def main_thread_us_per_call(make_model, config: MatrixConfig, work: list[Item], runs: int = 5) -> tuple[float, float]:
    """Medians over `runs` of the event loop thread's CPU time per model call, without latency:
    the whole run (its store opened, closed and read back included), and its items alone
    (run_items: the calls and the records' writes)."""
    whole, in_run = [], []
    for _ in range(runs):
        start = time.thread_time()
        run = await timed_run(make_model, config, work, concurrency=len(work))
        whole.append(1e6 * (time.thread_time() - start) / run["calls"])
        in_run.append(1e6 * run["thread_cpu_s"] / run["calls"])
    return statistics.median(whole), statistics.median(in_run)


class LongestCollection:
    """The longest garbage collection while it is active (gc.callbacks)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0

    def __enter__(self) -> "LongestCollection":
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._start)


class ClockThread:
    """Ends waits at their deadline from a thread of its own, through the event loop's
    call_soon_threadsafe (its self-pipe wakes the loop at once), as an engine's thread or a
    socket ends a real model's calls; the loop's own timers wake it up to a millisecond late
    (epoll's resolution), once for each of the few calls of an item that end within a
    millisecond of each other. Waits due together are ended in one pass."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def wait(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), loop, done))
            self._changed.notify()
        return done

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                now, ended = time.monotonic(), []
                while self._due and self._due[0][0] <= now:
                    ended.append(heapq.heappop(self._due))
            for _, _, loop, done in ended:
                loop.call_soon_threadsafe(_end, done)


def _end(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def clocked(provider_class: type, clock: ClockThread, latency: float) -> type:
    """`provider_class` (the scripted model) answering after `latency`, ended by `clock`."""

    class Clocked(provider_class):
        async def complete(self, request):
            completion = await super().complete(request)
            await clock.wait(latency)
            return completion

    return Clocked


def ideal_seconds(run: dict, latency: float, max_calls: int) -> float:
    """The longest item's critical path, or the run's calls through `max_calls` slots."""
    return max(run["longest_path"] * latency, run["calls"] * latency / max_calls)


def report(name: str, batched: dict, single: dict, per_item: dict | None = None) -> None:
    print(f"\n== {name}")
    rows = [("batched", batched), ("one call at a time", single)]
    if per_item is not None:
        rows.insert(1, ("one item, batched", per_item))
    for label, r in rows:
        print(
            f"{label:>20}: {r['done']} done, {r['failed']} failed in {r['seconds']:.1f}s | "
            f"{r['calls_per_item']:.1f} calls/item, {r['prompt_tokens_per_item']:.0f} prompt + "
            f"{r['completion_tokens_per_item']:.0f} completion tokens/item | {r['items_per_minute']:.2f} items/min"
        )
        for failure in r["failures"]:
            print(f"{'':>22}failed {failure[0]}: {failure[1][:160]}")
    print(f"{'speed-up':>20}: {single['seconds'] / batched['seconds']:.2f}x (same work, one run)")
    if per_item is not None:
        print(f"{'within an item':>20}: {single['seconds'] / per_item['seconds']:.2f}x (calls batched, items one at a time)")


async def bench(args: argparse.Namespace) -> None:
    config = MatrixConfig(
        num_roles=args.roles, num_steps=args.steps, max_tokens=args.max_tokens, json_max_tokens=args.json_max_tokens
    )
    sequential = config.model_copy(update={"sequential": True})
    work = items(args.items)
    figures: dict[str, float] = {}
    if args.mode in ("scripted", "both"):
        from society import respond

        from selfalign.llm.scripted import ScriptedProvider

        make = lambda: Model(ScriptedProvider(respond, delay=args.delay), max_concurrency=args.max_calls)
        # One item without latency first: the process's first-time costs (imports inside tqdm,
        # pydantic's and jinja's first calls) are not the run's.
        await timed_run(lambda: Model(ScriptedProvider(respond)), config, work[:1], concurrency=1)
        with LongestCollection() as collection:
            batched = await timed_run(make, config, work, concurrency=len(work))
        if not args.ideal_only:
            single = await timed_run(make, sequential, work, concurrency=1)
            per_item = await timed_run(make, config, work, concurrency=1)
            report(f"scripted, {args.delay * 1000:.0f} ms per call, {len(work)} items, "
                   f"{args.roles} roles x {args.steps} steps", batched, single, per_item)
        ideal = ideal_seconds(batched, args.delay, args.max_calls)
        floor = await timers_alone(batched["longest_path"], args.delay)
        print(f"{'critical path':>20}: {batched['longest_path']} dependent calls; ideal {ideal:.2f}s "
              f"(max of path x latency and {batched['calls']} calls x latency / {args.max_calls} in flight); "
              f"batched reaches {ideal / batched['seconds']:.3f} of it in {batched['seconds']:.2f}s; "
              f"{batched['cpu_ms_per_call']:.2f} ms of this process's CPU per call (the scripted model's included)")
        print(f"{'timers alone':>20}: the path's {batched['longest_path']} waits one after another, nothing else, "
              f"reach {args.delay * batched['longest_path'] / floor:.3f} of path x latency in {floor:.2f}s "
              f"(how late this machine's event loop wakes); load average {os.getloadavg()[0]:.2f}")
        print(f"{'garbage collection':>20}: the longest during the batched run {1000 * collection.longest:.1f} ms")
        if args.ideal_only:
            clock = ClockThread()
            provider = clocked(ScriptedProvider, clock, args.delay)
            by_clock = await timed_run(lambda: Model(provider(respond), max_concurrency=args.max_calls), config, work,
                                       concurrency=len(work))
            figures["ratio_clock_thread"] = round(ideal / by_clock["seconds"], 4)
            print(f"{'ended by a thread':>20}: the same run with each call ended by a clock thread instead of the loop's "
                  f"timers (as an engine's thread or a socket ends them): {ideal / by_clock['seconds']:.3f} of the ideal "
                  f"in {by_clock['seconds']:.2f}s")
            us, us_in_run = await main_thread_us_per_call(lambda: Model(ScriptedProvider(respond)), config, work)
            figures["main_thread_us_per_call"] = round(us)
            figures["main_thread_us_per_call_in_run"] = round(us_in_run)
            print(f"{'CPU per call':>20}: {us:.0f} us of the event loop thread's CPU per call without latency "
                  f"({len(work)} items, median of 5 runs, the scripted model's work included); {us_in_run:.0f} us "
                  f"of it while the items ran (not opening, closing and reading back the store)")
        figures |= {"ratio": round(ideal / batched["seconds"], 4), "seconds": round(batched["seconds"], 3),
                   "ideal": round(ideal, 3), "timers_alone_ratio": round(args.delay * batched["longest_path"] / floor, 4),
                   "cpu_ms_per_call": round(batched["cpu_ms_per_call"], 3), "load_average": round(os.getloadavg()[0], 2),
                   "gc_longest_ms": round(1000 * collection.longest, 1)}
    if args.mode in ("tiny", "both"):
        spec = args.model
        if spec is None:
            from selfalign.llm.tiny import build_tiny_model

            tiny = Path(tempfile.mkdtemp(prefix="matrix-bench-tiny-"))
            build_tiny_model(tiny)
            spec = f"hf:{tiny}"
        options = {"device": args.device} if args.device else {}
        make = lambda: load_model(spec, **options)
        batched = await timed_run(make, config, work, concurrency=len(work))
        single = await timed_run(make, sequential, work, concurrency=1)
        report(f"{spec}, {len(work)} items, {args.roles} roles x {args.steps} steps, "
               f"json_max_tokens {args.json_max_tokens}", batched, single)
        if batched["calls_per_item"] != single["calls_per_item"]:
            print("note: the two runs made different numbers of calls (batched float noise changed a verdict)")
    print(json.dumps({"args": vars(args), **figures}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["tiny", "scripted", "both"], default="both")
    p.add_argument("--items", type=int, default=4)
    p.add_argument("--roles", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=64, help="free-text calls (default 64)")
    p.add_argument("--json-max-tokens", type=int, default=2048)
    p.add_argument("--delay", type=float, default=0.05, help="scripted mode: seconds per call")
    p.add_argument("--max-calls", type=int, default=64, help="scripted mode: model calls in flight (--max-calls)")
    p.add_argument("--ideal-only", action="store_true", help="scripted mode: the batched run and its ideal only")
    p.add_argument("--model", default=None, help="a model spec instead of the tiny model (tiny mode)")
    p.add_argument("--device", default=None)
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
