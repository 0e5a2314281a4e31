"""The run store's writer thread: the event loop never waits for a write, reads see every write
made before them, a failed write stops all later ones, and a kill -9 with writes still queued
loses nothing a done item needs and repeats nothing."""

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from selfalign.errors import DiskFull
from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.inputs import Item


def items(n):
    return [Item(f"{i:06d}", i, ({"role": "user", "content": f"question {i}"},)) for i in range(n)]


def on_disk(folder, sql):
    with sqlite3.connect(folder / "run.sqlite") as db:
        return db.execute(sql).fetchall()


def test_writes_return_while_the_writer_is_held_and_reads_see_them(tmp_path):
    store = RunStore(tmp_path)
    store.add_items(items(2))
    held, release = threading.Event(), threading.Event()
    store._writer.submit(lambda db: held.set() or release.wait())  # the writer is busy (a slow disk)
    held.wait()

    store.mark_running("000000")  # none of these waits for the writer: it cannot move
    store.put_call("k", {"text": "an answer"})
    store.mark_done("000000", {"answer": "an answer"}, {"calls": 1})
    store.put_state("ns", "key", [1, 2])
    assert store.get_call("k") == {"text": "an answer"}  # from memory
    assert on_disk(tmp_path, "SELECT status FROM items ORDER BY idx") == [("pending",), ("pending",)]

    release.set()
    assert store.counts()["done"] == 1  # a read waits for the writes made before it
    assert store.get_state("ns", "key") == [1, 2]
    assert on_disk(tmp_path, "SELECT key FROM calls") == [("k",)]
    assert store.get_call("k") == {"text": "an answer"} and not store._writing  # now from the file
    store.close()


def test_a_failed_queued_write_stops_every_later_one_and_the_next_call_raises_it(tmp_path):
    store = RunStore(tmp_path)
    store.add_items(items(3))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store._writer.submit(lambda db: db.execute(f"PRAGMA max_page_count={pages + 2}"), awaited=True).result()
    store.mark_done("000000", {"a": "small"}, {})
    store.sync()
    store.mark_done("000001", {"a": "x" * 200_000}, {})  # more than the disk holds: fails on the writer
    with pytest.raises(DiskFull, match=str(tmp_path)):
        store.sync()
    with pytest.raises(DiskFull):
        store.mark_done("000002", {"a": "small"}, {})  # refused: the file stays a prefix of the writes
    with pytest.raises(DiskFull):
        store.close()
    assert on_disk(tmp_path, "SELECT id, status FROM items ORDER BY idx") == [
        ("000000", "done"), ("000001", "pending"), ("000002", "pending")]
    RunStore(tmp_path).close()  # the folder was released


RUN = """
import asyncio, sys, time
from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.runner import run_items
from selfalign.store import RunStore, run_store
from selfalign.store.inputs import Item

slow = sys.argv[2] == "slow"
if slow:  # a slow disk: the writer falls behind and writes queue up
    execute = run_store.Writer._execute
    run_store.Writer._execute = lambda self, job: time.sleep(0.003) or execute(self, job)
    run_store.CALL_BATCH, run_store.CALL_FLUSH_SECONDS = 10**9, 10**9  # calls written only with items
store = RunStore(sys.argv[1])
model = Model(ScriptedProvider(lambda r: "answer to " + r.messages[-1].content), cache=store)

async def run_item(item):
    first = await model.chat(item.messages)
    second = await model.chat([*item.messages, {"role": "assistant", "content": first.text},
                               {"role": "user", "content": "again"}])
    print("done", item.id, flush=True)  # the item is done in memory (written later)
    return {"first": first.text, "second": second.text}

items = [Item(f"{i:06d}", i, ({"role": "user", "content": f"question {i}"},)) for i in range(400)]
asyncio.run(run_items(store, items, run_item, concurrency=8, progress=False))
store.close()
"""


def test_kill_9_with_writes_queued_loses_nothing_a_done_item_needs_and_repeats_nothing(tmp_path):
    folder, rng = tmp_path / "run", random.Random(7)
    done_at_kills: dict[str, tuple[str, int]] = {}  # id -> (record, tries) once seen done on disk
    behind = 0
    for kill in range(3):
        proc = subprocess.Popen([sys.executable, "-c", RUN, str(folder), "slow"], stdout=subprocess.PIPE, text=True)
        reported = 0
        while reported < 40 * (kill + 1) + rng.randrange(20):
            line = proc.stdout.readline()
            assert line, "the run ended before the kill"
            reported += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = on_disk(folder, "SELECT id, record, tries FROM items WHERE status='done'")
        behind += reported > len(done) - len(done_at_kills)  # done in memory, not yet on disk
        for item_id, record, tries in done:
            assert done_at_kills.setdefault(item_id, (record, tries)) == (record, tries)  # never run again
        keys = {key for (key,) in on_disk(folder, "SELECT key FROM calls")}
        assert len(keys) >= 2 * len(done)  # every done item's two calls (replayed below)
    assert behind, "no kill landed while writes were queued"

    assert subprocess.run([sys.executable, "-c", RUN, str(folder), "fast"], capture_output=True).returncode == 0
    final = on_disk(folder, "SELECT id, record, tries FROM items WHERE status='done'")
    assert len(final) == 400
    for item_id, record, tries in final:
        assert done_at_kills.get(item_id, (record, tries)) == (record, tries)

    # every done item replays from the cache alone, with a model that fails any call
    store = RunStore(folder)
    store.reopen_done([item_id for item_id, _, _ in final])
    model = Model(ScriptedProvider(lambda r: pytest.fail(f"not cached: {r.messages}")), cache=store)

    async def replay(item):
        first = await model.chat(item.messages)
        second = await model.chat([*item.messages, {"role": "assistant", "content": first.text},
                                   {"role": "user", "content": "again"}])
        return {"first": first.text, "second": second.text}

    summary = asyncio.run(run_items(store, items(400), replay, concurrency=8, progress=False))
    assert summary.done == 400 and summary.usage["cached_calls"] == summary.usage["calls"] == 800
    assert {i.id: json.dumps(r) for i, r in store.done_records()} == {i: r for i, r, _ in final}
    store.close()
