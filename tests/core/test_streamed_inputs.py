"""Inputs streamed into the run store: checked in one pass that keeps no item, added in chunks
while the first items run; a kill while they are being added loses and repeats nothing."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from clitools import selfalign

from selfalign.errors import InputError, UserError
from selfalign.runner import runner
from selfalign.store import RunStore, check_inputs, load_items


def write_prompts(path, n, bad_line=None):
    lines = [json.dumps({"prompt": f"question {i}", "topic": i % 3}) for i in range(n)]
    if bad_line is not None:
        lines[bad_line - 1] = '{"prompt": "cut short'
    path.write_text("\n".join(lines) + "\n")
    return path


def echo(calls):
    async def run_item(item):
        calls.append(item.id)
        await asyncio.sleep(0)
        return {"answer": item.prompt.upper()}

    return run_item


def test_inputs_read_again_give_the_items_load_items_gives(tmp_path):
    path = write_prompts(tmp_path / "in.jsonl", 30)
    (tmp_path / "in.txt").write_text("a\r\nb\x0cc\n\n  d  \n")  # a form feed ends a line, as str.splitlines has it
    for source, limit in ((path, None), (path, 7), (tmp_path / "in.txt", None)):
        inputs = check_inputs(source, limit=limit)
        assert list(inputs) == load_items(source, limit=limit)
        assert len(inputs) == len(load_items(source, limit=limit))
    assert [item.prompt for item in check_inputs(tmp_path / "in.txt")] == ["a", "b", "c", "d"]


def test_a_bad_row_far_into_a_large_file_stops_the_check(tmp_path):
    path = write_prompts(tmp_path / "in.jsonl", 20_000, bad_line=19_000)
    with pytest.raises(InputError, match=rf"in\.jsonl:19000: broken JSON .*each line must be a JSON object"):
        check_inputs(path, limit=10)  # rows past the limit are checked too


def test_items_are_added_in_chunks_in_order_and_all_run_once(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK", 7)
    store = RunStore(tmp_path / "run")
    calls = []
    summary = asyncio.run(runner.run_items(store, check_inputs(write_prompts(tmp_path / "in.jsonl", 50)), echo(calls),
                                           concurrency=4, progress=False))
    assert (summary.done, summary.ran) == (50, 50)
    assert sorted(calls) == [f"{i:06d}" for i in range(50)]
    records = list(store.done_records())
    assert [item.idx for item, _ in records] == list(range(50))
    assert records[12][0].extra == {"topic": 0} and records[12][1] == {"answer": "QUESTION 12"}


def test_a_changed_row_past_the_first_chunk_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK", 7)
    path = write_prompts(tmp_path / "in.jsonl", 30)
    store = RunStore(tmp_path / "run")
    asyncio.run(runner.run_items(store, check_inputs(path), echo([]), progress=False))
    lines = path.read_text().splitlines()
    lines[25] = json.dumps({"prompt": "another question"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="input item 000025 differs .* the input file changed"):
        asyncio.run(runner.run_items(store, check_inputs(path), echo([]), progress=False))


# Runs in a process of its own: reads the inputs slowly and adds them in chunks of 5, and kills
# itself with SIGKILL the moment a chunk is handed to the store once 3 items are done.
KILLED_MID_INGEST = r"""
import asyncio, os, signal, sys, time
from selfalign.runner import runner
from selfalign.store import RunStore, check_inputs
runner.CHUNK = 5
store = RunStore(sys.argv[2])
inputs, queue_items = check_inputs(sys.argv[1]), store.queue_items
class SlowInputs:
    def __len__(self):
        return len(inputs)
    def __iter__(self):
        for item in inputs:
            time.sleep(0.005)
            yield item
def queue_and_die(items):
    future = queue_items(items)
    if store.counts()["done"] >= 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return future
store.queue_items = queue_and_die
async def run_item(item):
    await asyncio.sleep(0.01)
    return {"answer": item.prompt.upper()}
asyncio.run(runner.run_items(store, SlowInputs(), run_item, concurrency=2, progress=False))
"""


def test_a_kill_while_items_are_added_then_a_rerun_loses_and_repeats_nothing(tmp_path, monkeypatch):
    path, out = write_prompts(tmp_path / "in.jsonl", 40), tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_INGEST, str(path), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    db = sqlite3.connect(out / "run.sqlite")
    stored = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    done_before = {i for (i,) in db.execute("SELECT id FROM items WHERE status='done'")}
    db.close()
    assert stored < 40 and len(done_before) >= 3  # killed while adding, some items done

    monkeypatch.setattr(runner, "CHUNK", 5)
    store = RunStore(out)
    calls = []
    summary = asyncio.run(runner.run_items(store, check_inputs(path), echo(calls), progress=False))
    assert summary.done == 40 and store.counts() == {"pending": 0, "running": 0, "done": 40, "failed": 0}
    assert len(calls) == len(set(calls)) == 40 - len(done_before)  # nothing run twice in the rerun
    assert not set(calls) & done_before  # nor anything done before the kill
    records = list(store.done_records())
    assert [item.id for item, _ in records] == [f"{i:06d}" for i in range(40)]
    assert all(record == {"answer": item.prompt.upper()} for item, record in records)


def test_cli_bad_row_on_line_n_of_a_large_file_stops_before_any_model_call(tmp_path):
    rules = tmp_path / "replies.jsonl"
    rules.write_text(json.dumps({"match": "", "reply": "an answer"}) + "\n")
    bad = write_prompts(tmp_path / "big.jsonl", 20_000, bad_line=18_001)
    proc = selfalign("critique-revise", "--model", f"scripted:{rules}", "--prompts", bad, "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2
    assert f"{bad}:18001: broken JSON" in proc.stderr
    assert not (tmp_path / "run").exists()  # no store opened, so no model call made
