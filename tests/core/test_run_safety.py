"""A run folder has one writer; readers read while it writes; a full disk stops a run cleanly
and the rerun loses nothing; exports are whole or absent; `export --failures | head` is quiet."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from clitools import selfalign

from selfalign.errors import DiskFull
from selfalign.store import RunStore
from selfalign.store.export import write_rows


def rules(tmp_path, delay):
    path = tmp_path / "replies.jsonl"
    path.write_text(json.dumps({"match": "", "replies": ["An answer.", "Another answer."], "delay": delay}) + "\n")
    return path


@pytest.fixture
def slow_model(tmp_path):
    return f"scripted:{rules(tmp_path, 0.05)}"


def prompts_file(tmp_path, n):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"instruction number {i}"}) + "\n" for i in range(n)))
    return path


def count(run, status="done"):
    try:
        with sqlite3.connect(run / "run.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE status=?", (status,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def start(args):
    return subprocess.Popen([sys.executable, "-m", "selfalign.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_second_writer_is_refused_at_once_readers_read_and_a_kill_leaves_no_stale_lock(tmp_path, slow_model):
    out = tmp_path / "run"
    rules(tmp_path, 0.2)  # slow enough to outlast the checks below on a busy machine
    args = ["critique-revise", "--model", slow_model, "--prompts", prompts_file(tmp_path, 200),
            "--concurrency", "2", "--quiet", "--out", out]
    first = start(args)
    wait_for(lambda: count(out) >= 2)

    second = selfalign(*args, check=False)
    assert second.returncode != 0
    assert f"{out} is being written by another selfalign process (pid {first.pid})" in second.stderr
    assert "--wait" in second.stderr and "Traceback" not in second.stderr

    partial = selfalign("export", out, "--format", "sft", "--to", tmp_path / "partial.jsonl")  # reads while it writes
    assert "wrote" in partial.stdout and first.poll() is None

    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out / "run.lock").exists()  # the file stays; the OS dropped the lock with the process
    rules(tmp_path, 0.0)  # the same command (the scripted model only answers faster)
    selfalign(*args)
    assert count(out) == 200


def test_wait_runs_after_the_writer_ends_and_no_item_runs_twice(tmp_path, slow_model):
    out = tmp_path / "run"
    rules(tmp_path, 0.1)
    args = ["critique-revise", "--model", slow_model, "--prompts", prompts_file(tmp_path, 40),
            "--concurrency", "1", "--quiet", "--out", out]
    first = start(args)
    wait_for(lambda: count(out) >= 1)
    second = selfalign(*args, "--wait")
    assert "waiting for pid" in second.stderr
    assert first.wait(60) == 0
    assert "0 run now" in second.stdout  # the first did them all
    with sqlite3.connect(out / "run.sqlite") as db:
        assert db.execute("SELECT MAX(tries) FROM items").fetchone()[0] == 1


def test_lock_is_shared_within_one_process(tmp_path):
    a, b = RunStore(tmp_path), RunStore(tmp_path)
    b.close()
    a.put_state("ns", "k", 1)
    a.close()


def test_full_disk_stops_with_the_folder_and_space_and_the_rerun_loses_nothing(tmp_path, slow_model, monkeypatch):
    """SQLite's "database or disk is full" (SQLITE_FULL), the error a full disk gives, made by
    capping the database's size (the real thing, a full tmpfs, was checked by hand)."""
    from selfalign.cli.main import main

    out = tmp_path / "run"
    args = ["critique-revise", "--model", slow_model, "--prompts", str(prompts_file(tmp_path, 30)),
            "--concurrency", "4", "--quiet", "--out", str(out)]
    real_init = RunStore.__init__

    def small_disk(self, *a, **k):
        real_init(self, *a, **k)
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        cap = lambda db: db.execute(f"PRAGMA max_page_count={pages + 3}")  # noqa: E731
        self._writer.submit(cap, awaited=True).result()  # on the connection that writes

    monkeypatch.setattr(RunStore, "__init__", small_disk)
    assert main(args) == 2
    monkeypatch.undo()
    assert 0 < count(out) < 30 and count(out, "failed") == 0  # stopped mid-run, nothing marked failed

    proc = selfalign(*args)
    assert "30 done, 0 failed" in proc.stdout
    selfalign("export", out, "--format", "sft", "--to", tmp_path / "sft.jsonl")
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 30


def test_full_disk_message_names_the_folder_and_space(tmp_path):
    message = str(DiskFull(tmp_path / "run"))
    assert str(tmp_path / "run") in message and "MiB free of" in message and "rerun the same command" in message


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.parquet", "rows"])
def test_a_failed_export_leaves_the_old_file_and_no_temporary(tmp_path, name, monkeypatch):
    target = tmp_path / name
    write_rows([{"a": 1}], target)
    before = {p.name for p in tmp_path.iterdir()}

    def full_disk(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("selfalign.store.files.os.replace", full_disk)
    with pytest.raises(DiskFull, match=str(tmp_path)):
        write_rows([{"a": 2}], target)
    monkeypatch.undo()
    assert {p.name for p in tmp_path.iterdir()} == before
    assert write_rows([{"a": 3}, {"a": 4}], target) == 2
    assert {p.name for p in tmp_path.iterdir()} == before


def test_export_failures_into_head_ends_quietly(tmp_path):
    from selfalign.store.inputs import Item

    run = RunStore(tmp_path / "run")
    run.add_items([Item(f"{i:06d}", i, ({"role": "user", "content": "q"},)) for i in range(5000)])
    for i in range(5000):
        run.mark_failed(f"{i:06d}", "ModelError: the model said nothing useful " * 4, {})
    run.close()
    proc = subprocess.run(
        f"{sys.executable} -m selfalign.cli.main export {tmp_path / 'run'} --failures | head -n 2",
        shell=True, capture_output=True, text=True, timeout=120,
    )
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""


def test_disk_full_is_recognised_in_the_ways_libraries_report_it(tmp_path):
    from selfalign.errors import is_disk_full

    assert is_disk_full(OSError(28, "No space left on device"), tmp_path)
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert is_disk_full(wrapped, tmp_path)
    assert not is_disk_full(ValueError("file write failed: bad dtype"), tmp_path)  # plenty of space here
