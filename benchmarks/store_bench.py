"""Event-loop stalls from the run store at a steady rate of cached model calls.

    python benchmarks/store_bench.py                       # 2,000 calls/s for 15 s, both ways
    python benchmarks/store_bench.py --rate 4000 --seconds 10

What a run does to its store, at `--rate` calls per second on one event loop: each call is
looked up in the cache and then stored (a completion of about 1.5 kB); every `--calls-per-item`
calls an item is marked running and then done with its record (about 30 kB, a MATRIX record).
Every store method is timed where it runs, on the event loop, and a ticker measures how late
the loop wakes up. On a shared machine the process also waits for a CPU in the middle of any
call; that wait (the kernel's run-queue time, /proc/thread-self/schedstat) is taken out of the
"store" figures, which leaves the time the store itself took: its CPU work and its waits for
the disk (fsyncs, locks). The wall-clock figures are printed beside them. Three ways, in one
run, each on a fresh run folder:
- per call: every write made on the event loop, every cached call its own commit, WAL
  checkpoints on the writing connection (the store before batching);
- batched on the loop: every write made on the event loop, calls in batches and with the item
  that used them, checkpoints on a thread of their own (the store before its writer thread);
- writer thread: the store as it is (the same batches, written by a thread of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import Future

from selfalign.store import RunStore, run_store, writer
from selfalign.store.inputs import Item

COMPLETION = {"text": "word " * 300, "prompt_tokens": 900, "completion_tokens": 300, "finish_reason": "stop"}
RECORD = {"events": [{"actor": f"role {i}", "action": "acts " * 100} for i in range(60)]}


SCHEDSTAT = os.open("/proc/thread-self/schedstat", os.O_RDONLY)


def queued() -> float:
    """Seconds this thread has waited for a CPU so far."""
    return int(os.pread(SCHEDSTAT, 100, 0).split()[1]) / 1e9


class Timed:
    """Wraps a store; keeps the wall time of every call made on it, and that time less the
    time spent waiting for a CPU."""

    def __init__(self, store: RunStore) -> None:
        self.store, self.wall, self.own, self.slow, self.longest = store, [], [], {}, (0.0, "")

    def __getattr__(self, name: str):
        method = getattr(self.store, name)

        def timed(*args):
            start, waited = time.perf_counter(), queued()
            try:
                return method(*args)
            finally:
                wall = time.perf_counter() - start
                self.wall.append(wall)
                self.own.append(wall - (queued() - waited))
                if self.own[-1] > 0.005:
                    self.slow[name] = self.slow.get(name, 0) + 1
                self.longest = max(self.longest, (self.own[-1], name))

        return timed


class OnTheLoop(run_store.Writer):
    """Every write made where it is asked for, on the event loop (the store before its writer thread)."""

    def __init__(self, db) -> None:
        self.db, self.error = db, None

    def submit(self, job, *, awaited: bool = False) -> Future:
        future = Future()
        future.set_result(self._execute(job))
        return future

    def stop(self) -> None:
        self.db.close()


@contextlib.contextmanager
def way(name: str):
    """The store made as `name` says, for the stores opened inside."""
    saved = run_store.Writer, run_store.CALL_BATCH
    if name != "writer thread":
        run_store.Writer = OnTheLoop
    if name == "per call":
        run_store.CALL_BATCH = 1
    try:
        yield
    finally:
        run_store.Writer, run_store.CALL_BATCH = saved


def per_call(store: RunStore) -> None:
    """The store before batching: checkpoints where the commits are."""
    store._checkpoints.stop()
    store._checkpoints = None
    store._writer.db.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default


async def load(store: Timed, rate: float, seconds: float, calls_per_item: int) -> int:
    """Calls at `rate` per second, in ticks of 5 ms; returns the number made."""
    start, made, item = time.perf_counter(), 0, 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(int(rate * elapsed) - made):
            key = hashlib.sha256(str(made).encode()).hexdigest()
            if made % calls_per_item == 0:
                store.mark_running(f"{item:06d}")
            store.get_call(key)
            store.put_call(key, COMPLETION)
            made += 1
            if made % calls_per_item == 0:
                store.mark_done(f"{item:06d}", RECORD, {"calls": calls_per_item})
                item += 1
        await asyncio.sleep(0.005)
    return made


async def lateness(stop: asyncio.Event) -> list[float]:
    """How late the event loop runs a 1 ms sleep, for as long as the load runs."""
    late = []
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append(time.perf_counter() - start - 0.001)
    return late


async def measure(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder, way(name):
        store = RunStore(folder)
        items = args.rate * args.seconds // args.calls_per_item + 2
        store.add_items([Item(f"{i:06d}", i, ({"role": "user", "content": "q"},)) for i in range(int(items))])
        if name == "per call":
            per_call(store)
        timed, stop = Timed(store), asyncio.Event()
        ticker = asyncio.create_task(lateness(stop))
        made = await load(timed, args.rate, args.seconds, args.calls_per_item)
        stop.set()
        late = await ticker
        start = time.perf_counter()
        store.close()
        closing = time.perf_counter() - start
    own, wall = sorted(timed.own), sorted(timed.wall)
    return {
        "calls": made,
        "store_max_ms": 1000 * own[-1],
        "store_p99_ms": 1000 * own[int(0.99 * len(own))],
        "store_over_1ms": sum(d > 0.001 for d in own),
        "store_over_5ms": sum(d > 0.005 for d in own),
        "over_5ms_by_method": timed.slow,
        "longest": timed.longest[1],
        "wall_max_ms": 1000 * wall[-1],
        "wall_over_5ms": sum(d > 0.005 for d in wall),
        "loop_late_max_ms": 1000 * max(late),
        "loop_late_median_ms": 1000 * statistics.median(late),
        "close_ms": 1000 * closing,  # what was still queued, written
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=2000, help="cached calls per second")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--calls-per-item", type=int, default=70, help="70: a MATRIX item of 5 roles x 5 steps")
    args = p.parse_args()
    print(f"{args.rate} calls/s for {args.seconds:.0f} s; batch {run_store.CALL_BATCH} calls "
          f"or {run_store.CALL_FLUSH_SECONDS} s; checkpoints every {writer.CHECKPOINT_SECONDS} s")
    results = {}
    for name in ("per call", "batched on the loop", "writer thread"):
        r = results[name] = asyncio.run(measure(name, args))
        print(
            f"{name:>19}: {r['calls']} calls | store call max {r['store_max_ms']:.1f} ms ({r['longest']}), "
            f"p99 {r['store_p99_ms']:.3f} ms, {r['store_over_1ms']} over 1 ms, {r['store_over_5ms']} over 5 ms "
            f"{r['over_5ms_by_method'] or ''}| "
            f"wall clock (CPU waits included): max {r['wall_max_ms']:.1f} ms, {r['wall_over_5ms']} over 5 ms; "
            f"loop late max {r['loop_late_max_ms']:.1f} ms, median {r['loop_late_median_ms']:.2f} ms; "
            f"close {r['close_ms']:.0f} ms"
        )
    for before in ("per call", "batched on the loop"):
        ratio = results[before]["store_max_ms"] / results["writer thread"]["store_max_ms"]
        print(f"longest store stall, {before} / writer thread: {ratio:.1f}x (one run)")
    print(json.dumps({"args": vars(args), "results": results}))


if __name__ == "__main__":
    main()
