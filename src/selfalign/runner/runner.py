"""The runner: every pending item of a run through `run_item`, concurrently and resumably.

It knows a method only as an async function from an item to a JSON-able record. An item is
marked done together with its record in one write, so a kill at any instant loses at most the
items in flight (whose finished model calls stay cached), and a rerun never repeats a done item.

Items are added to the store in chunks (one transaction each) by a task of their own, at the
speed of reading them, while the items of the first chunks already run: a stream of items (a
1,000,000-row prompts file as `selfalign.store.Inputs` reads it) starts its first model call
after one chunk, and only a few chunks of items are held in memory at once (the ids of the
chunks added and not yet run are kept as one short text each). A kill while items are being added
leaves the chunks before it in the store; a rerun adds the same items again, finds those there
(refusing any whose content changed) and runs every item not yet done, once.

A rerun retries failed items, and each retry counts: the model layer sees the item's retry count
(`current_retry`) and draws new seeds for the calls that failed it (an answer cut at its budget,
one that did not validate), so a retry is a new draw, not a replay of the same failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Iterator

from tqdm.contrib.logging import logging_redirect_tqdm

from selfalign.errors import DiskFull
from selfalign.progress import progress_bar
from selfalign.llm.usage import Usage, current_retry, current_usage
from selfalign.store.inputs import Inputs, Item
from selfalign.store.run_store import RunStore

log = logging.getLogger(__name__)
RunItem = Callable[[Item], Awaitable[Any]]
RETRIES = "item_retries"  # state namespace: item id -> how many times it was reopened after failing
CHUNK = 2000  # items added to the store in one transaction


@dataclass
class RunSummary:
    done: int
    failed: int
    ran: int
    seconds: float
    usage: dict[str, int]

    def line(self) -> str:
        u = self.usage
        return (
            f"{self.done} done, {self.failed} failed ({self.ran} run now in {self.seconds:.1f}s); "
            f"{u.get('calls', 0)} calls ({u.get('cached_calls', 0)} cached), "
            f"{u.get('prompt_tokens', 0)} prompt + {u.get('completion_tokens', 0)} completion tokens"
        )


async def run_items(
    store: RunStore,
    items: list[Item] | Inputs,
    run_item: RunItem,
    *,
    concurrency: int = 32,
    retry_failed: bool = True,
    progress: bool = True,
    label: str = "items",
) -> RunSummary:
    """Add `items` to the run (a list, or a stream read once), then run every one of them not
    yet done, `concurrency` at a time; `label` names them on the progress bar."""
    failed_before = {item_id for item_id, _ in store.failures()} if retry_failed else set()
    retries = dict(store.state_items(RETRIES))
    total = len(items)
    start = time.monotonic()
    bar = _Progress(total, store.counts(), label, enabled=progress)
    added: asyncio.Queue[str | None] = asyncio.Queue()  # each chunk's ids, as a JSON array
    work: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=2 * concurrency)
    workers = max(1, min(concurrency, total))
    ran = 0

    async def add() -> None:
        chunks = _chunks(items)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:  # read off the event loop
            await asyncio.wrap_future(store.queue_items(chunk))
            ids = [item.id for item in chunk]
            _count_retries(store, retries, [i for i in ids if i in failed_before])
            store.reopen_unfinished(retry_failed=retry_failed, ids=ids)
            added.put_nowait(json.dumps(ids))
        added.put_nowait(None)

    async def feed() -> None:
        nonlocal ran
        while (ids := await added.get()) is not None:
            for item in store.pending(json.loads(ids)):
                ran += 1
                await work.put(item)
        for _ in range(workers):
            await work.put(None)

    async def worker() -> None:
        while (item := await work.get()) is not None:
            ok, usage = await _run_one(store, item, run_item, retries.get(item.id, 0))
            bar.update(ok, usage)

    with logging_redirect_tqdm(), _heap.during_run():  # warnings print above the bar, not through it
        await _all_or_none([add(), feed(), *(worker() for _ in range(workers))])
    bar.close()
    counts = store.counts()
    return RunSummary(counts["done"], counts["failed"], ran, time.monotonic() - start, store.usage_totals())


class _FrozenHeap:
    """The objects alive when a run starts (the model, its tokenizer, the store, the inputs
    read) are moved out of the garbage collector's sight until the run ends: otherwise each
    full collection during the run walks them all (20-56 ms in MATRIX's benchmark, more with a
    model loaded), and every model call in flight waits for it. Objects the run creates are
    collected as usual; those of before are back under the collector once the last run under
    way (runs may nest, or run in several threads) has ended."""

    def __init__(self) -> None:
        self._runs = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def during_run(self) -> Iterator[None]:
        with self._lock:
            if self._runs == 0:
                gc.freeze()
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    gc.unfreeze()


_heap = _FrozenHeap()


def _chunks(items: Iterable[Item]) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, CHUNK)):
        yield chunk


async def _all_or_none(coroutines: list[Awaitable[None]]) -> None:
    """Run the coroutines as tasks until all end; the first error cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _count_retries(store: RunStore, counts: dict[str, int], failed: list[str]) -> None:
    """One more retry for each of the `failed` items about to be reopened (kept in `counts` and the store)."""
    for item_id in failed:
        counts[item_id] = counts.get(item_id, 0) + 1
        store.put_state(RETRIES, item_id, counts[item_id])


async def _run_one(store: RunStore, item: Item, run_item: RunItem, retry: int) -> tuple[bool, Usage]:
    usage = Usage()
    token, retry_token = current_usage.set(usage), current_retry.set(retry)
    store.mark_running(item.id)
    try:
        record = await run_item(item)
        store.mark_done(item.id, record, usage.to_json())
        return True, usage
    except (asyncio.CancelledError, DiskFull):  # the run stops; the item stays to be rerun
        raise
    except Exception as exc:  # one item's failure, whatever it is, must not stop the others
        reason = f"{type(exc).__name__}: {exc}"
        log.debug("item %s failed: %s", item.id, reason, exc_info=True)
        store.mark_failed(item.id, reason, usage.to_json())
        return False, usage
    finally:
        current_usage.reset(token)
        current_retry.reset(retry_token)


class _Progress:
    """Items done / failed, model calls, tokens and rate on one bar (selfalign.progress)."""

    def __init__(self, total: int, counts: dict[str, int], label: str, enabled: bool) -> None:
        self.done, self.failed = counts["done"], 0
        self.calls = self.tokens = 0
        self.started = time.monotonic()
        self.bar = progress_bar(total, label, unit="item", initial=self.done, enabled=enabled)

    def update(self, ok: bool, usage: Usage) -> None:
        self.done += ok
        self.failed += not ok
        self.calls += usage.calls
        self.tokens += usage.prompt_tokens + usage.completion_tokens
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix(
            done=self.done, failed=self.failed, calls=self.calls, tok=self.tokens, tok_s=f"{self.tokens / elapsed:.0f}"
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
