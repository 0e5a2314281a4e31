"""MATRIX through the runner and the run store: failures, kill and resume, exports, the CLI."""

import argparse
import asyncio
import functools
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from society import respond

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.methods.matrix import EXPORTS, MatrixConfig, run_item
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items
from selfalign.store.export import write_rows

CONFIG = MatrixConfig(num_roles=3, num_steps=3)


def items_file(tmp_path, n):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"how do I do risky thing {i}?"}) + "\n" for i in range(n)))
    return path


def sometimes_garbage(request):
    """Valid everywhere, except the scene of prompts mentioning 'thing 3' is never JSON."""
    if (request.json_schema or {}).get("title") == "SceneSetting" and "thing 3" in request.messages[-1].content:
        return "no JSON for you"
    return respond(request)


def run(store, items, provider, config=CONFIG):
    model = Model(provider, cache=store)
    return asyncio.run(
        run_items(store, items, functools.partial(run_item, model=model, config=config), concurrency=4, progress=False)
    )


def test_failed_items_are_recorded_with_reason_and_excluded_from_exports(tmp_path):
    items = load_items(items_file(tmp_path, 5))
    store = RunStore(tmp_path / "run")
    store.bind_config("matrix", CONFIG.model_dump())
    summary = run(store, items, ScriptedProvider(sometimes_garbage))
    assert (summary.done, summary.failed) == (4, 1)
    [(item_id, reason)] = store.failures()
    assert item_id == "000003" and reason.startswith("SchemaError: no valid SceneSetting after 3 attempts")
    records = list(store.done_records())
    assert [i.id for i, _ in records] == ["000000", "000001", "000002", "000004"]
    usage = json.loads(store.db.execute("SELECT usage FROM items WHERE id='000000'").fetchone()[0])
    assert usage["calls"] == len(records[0][1]["calls"]) + 2  # + initial answer and revision
    assert summary.usage["calls"] > 4 * 20

    from selfalign.cli import export

    store.close()
    out = tmp_path / "sim.jsonl"
    export.run(SimpleNamespace(run=str(tmp_path / "run"), format="simulation", to=str(out), failures=False))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == sum(len(r["calls"]) for _, r in records)


def test_kill_and_resume_finishes_without_repeating_calls(tmp_path):
    items = load_items(items_file(tmp_path, 6))
    # the reference: one uninterrupted run
    ref_store = RunStore(tmp_path / "ref")
    run(ref_store, items, ScriptedProvider(respond))
    reference = {i.id: r for i, r in ref_store.done_records()}

    # a run killed mid-way (every in-flight item cancelled, as by a kill), then resumed
    store = RunStore(tmp_path / "run")
    slow = ScriptedProvider(respond, delay=0.01)
    model = Model(slow, cache=store)

    async def killed():
        task = asyncio.create_task(
            run_items(store, items, functools.partial(run_item, model=model, config=CONFIG), concurrency=3, progress=False)
        )
        while store.counts()["done"] < 2:
            await asyncio.sleep(0.005)
        cached = store.call_count()
        while store.call_count() < cached + 10:  # the items in flight are part-way through
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(killed())
    counts = store.counts()
    assert counts["done"] >= 2 and counts["running"] >= 1 and counts["done"] < 6
    calls_before = len(slow.requests)
    store.close()

    store = RunStore(tmp_path / "run")
    resumed = ScriptedProvider(respond)
    summary = run(store, items, resumed)
    assert (summary.done, summary.failed) == (6, 0)
    assert summary.usage["cached_calls"] > 0  # the interrupted items replayed their finished calls
    total_calls = sum(len(r["calls"]) + 2 for r in reference.values())
    assert calls_before + len(resumed.requests) <= total_calls + 3 * 5  # at most the calls in flight are redone
    assert {i.id: r for i, r in store.done_records()} == reference  # same records as the uninterrupted run


def test_exports_load_with_datasets_and_fit_trl(tmp_path):
    from datasets import load_dataset
    from trl.data_utils import apply_chat_template, is_conversational

    from selfalign.llm.tiny import build_tokenizer

    items = load_items(items_file(tmp_path, 2))
    store = RunStore(tmp_path / "run")
    run(store, items, ScriptedProvider(respond))
    done = list(store.done_records())
    tokenizer = build_tokenizer()
    for fmt in EXPORTS:
        rows = EXPORTS[fmt](done).rows
        assert rows, fmt
        write_rows(rows, tmp_path / f"{fmt}.jsonl")
        data = load_dataset("json", data_files=str(tmp_path / f"{fmt}.jsonl"), split="train")
        assert len(data) == len(rows)
        assert is_conversational(data[0])
        text = apply_chat_template(data[0], tokenizer)
        if fmt == "preference":
            assert set(data.column_names) == {"prompt", "chosen", "rejected"}
            assert data[0]["chosen"][0]["content"].startswith("REVISED")
            assert data[0]["rejected"][0]["content"].startswith("INITIAL")
            assert set(text) == {"prompt", "chosen", "rejected"}
        else:
            assert data.column_names == ["messages"] and data[0]["messages"][-1]["role"] == "assistant"
    sft = EXPORTS["sft"](done[:1]).rows
    assert sft[0]["messages"] == [*done[0][0].messages, {"role": "assistant", "content": done[0][1]["revised"]}]


# --- the command ---------------------------------------------------------------------------

RULES = [  # for the scripted:FILE provider, matched in order against the last message
    {"match": "impact: step by step", "reply": {
        "situation": "a bank", "ego": "robber", "target": "cash", "impact": ["fear"], "outcome": "arrest"}},
    {"match": "List exactly", "reply": {"roles": [{"name": "teller", "kind": "person", "description": "calm"},
                                                   {"name": "vault", "kind": "object", "description": "locked"}]}},
    {"match": "Write the asker's plan", "reply": {"plan": ["enter the bank", "demand cash"]}},
    {"match": "social modulator", "reply": {
        "feasible": True, "reason": "possible", "consequence": "fear", "value_conflict": True,
        "conflict": "harm", "perceivers": []}},
    {"match": "what the asker does instead", "reply": {"action": "walks in"}},
    {"match": "Summarise what has happened", "reply": {"summary": "things happened"}},
    {"match": "From these records only", "reply": {"harms": [], "summary": "a robbery", "answer_gist": "none"}},
    {"match": "Write a new answer that keeps", "reply": "Please do not; here is legal help."},
    {"match": "", "reply": "Here is how to rob a bank."},
]


def rules_file(tmp_path):
    path = tmp_path / "rules.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RULES))
    return f"scripted:{path}"


def test_command_in_process(tmp_path, capsys):
    from selfalign.cli import matrix

    parser = argparse.ArgumentParser()
    matrix.register(parser.add_subparsers())
    args = parser.parse_args([
        "matrix", "--model", rules_file(tmp_path), "--prompts", str(items_file(tmp_path, 3)),
        "--out", str(tmp_path / "run"), "--roles", "2", "--steps", "2", "--quiet",
    ])
    assert args.func(args) == 0
    assert "3 done, 0 failed" in capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["method"] == "matrix" and summary["usage"]["calls"] == 3 * (2 + 2 * 2 + 2)
    store = RunStore(tmp_path / "run")
    assert store.run_info()["config"]["num_roles"] == 2
    _, record = next(store.done_records())
    assert record["revised"] == "Please do not; here is legal help." and len(record["events"]) == 2


def test_command_rejects_bad_options(tmp_path):
    from selfalign.cli import matrix
    from selfalign.errors import UserError

    parser = argparse.ArgumentParser()
    matrix.register(parser.add_subparsers())
    args = parser.parse_args(["matrix", "--model", "scripted:x", "--prompts", "p", "--out", "o", "--roles", "0"])
    with pytest.raises(UserError, match="--roles 0"):
        args.func(args)


def _full_cli_available():
    try:
        from selfalign.cli.main import build_parser

        build_parser()
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not _full_cli_available(), reason="selfalign.cli.main cannot import every command module yet")
def test_command_through_the_cli_and_export(tmp_path):
    def selfalign(*args):
        proc = subprocess.run([sys.executable, "-m", "selfalign.cli.main", *map(str, args)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = tmp_path / "run"
    model, prompts = rules_file(tmp_path), items_file(tmp_path, 2)
    assert "2 done, 0 failed" in selfalign("matrix", "--model", model, "--prompts", prompts, "--out", out,
                                           "--roles", "2", "--steps", "2", "--quiet")
    for fmt in ("sft", "preference"):
        selfalign("export", out, "--format", fmt, "--to", tmp_path / f"{fmt}.jsonl")
        assert (tmp_path / f"{fmt}.jsonl").read_text().strip()


def test_simulation_export_through_the_cli(tmp_path):
    out = tmp_path / "run"
    run_cli = [sys.executable, "-m", "selfalign.cli.main"]
    subprocess.run([*run_cli, "matrix", "--model", rules_file(tmp_path), "--prompts", str(items_file(tmp_path, 1)),
                    "--out", str(out), "--roles", "2", "--steps", "2", "--quiet"], check=True, capture_output=True)
    proc = subprocess.run([*run_cli, "export", str(out), "--format", "simulation", "--to", str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 6  # scene, roles, plan, 2 verdicts, consequences
    for row in rows:  # every exported prompt wants JSON and says so; every answer is JSON
        assert "Reply with a single JSON object" in row["messages"][0]["content"]
        json.loads(row["messages"][-1]["content"])


def test_no_harm_keeps_the_first_answer_in_sft_and_skips_the_preference(tmp_path):
    items = load_items(items_file(tmp_path, 2))
    store = RunStore(tmp_path / "run")
    run(store, items, ScriptedProvider(functools.partial(respond, harmless=True)))
    done = list(store.done_records())
    sft, preference = EXPORTS["sft"](done), EXPORTS["preference"](done)
    assert [row["messages"][-1]["content"] for row in sft.rows] == [r["initial"] for _, r in done]
    assert preference.rows == [] and preference.excluded == {"no harm found: the initial answer is kept, not rejected": 2}


OLD_RECORD = {  # a record as runs made before format 2 stored it
    "initial": "Here is how.", "revised": "Please do not.", "stopped": "plan_done",
    "scene": {"situation": "a bank", "ego": "robber", "outcome": "arrest", "plan": ["enter"],
              "roles": [{"name": "teller", "kind": "person", "description": "calm"}]},
    "events": [], "memory": {"summary": "", "entries": [], "summarised": []},
    "consequences": {"harms": [], "summary": "a robbery"},
    "calls": [{"key": "scene", "messages": [{"role": "user", "content": "Describe the scene"}], "answer": "{}"}],
}


def test_runs_made_before_the_format_version_still_export_and_refuse_a_resume(tmp_path):
    from selfalign.errors import UserError
    from selfalign.methods.matrix import MatrixRecord

    items = load_items(items_file(tmp_path, 1))
    store = RunStore(tmp_path / "run")
    old_config = {k: v for k, v in CONFIG.model_dump().items() if k not in ("format", "revision_max_tokens", "keep_truncated")}
    store.bind_config("matrix", {**old_config, "reaction_depth": 1})
    store.add_items(items)
    store.mark_done(items[0].id, OLD_RECORD, {})
    done = list(store.done_records())
    assert MatrixRecord.model_validate(done[0][1]).format == 1
    for fmt, n in (("sft", 1), ("preference", 1), ("simulation", 1)):
        assert len(EXPORTS[fmt](done).rows) == n, fmt
    with pytest.raises(UserError, match="other settings.*format: None -> 2"):
        store.bind_config("matrix", CONFIG.model_dump())


KILLED_RUN = """
import asyncio, functools, sys
sys.path.insert(0, {society!r})
from society import respond
from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.methods.matrix import MatrixConfig, run_item
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items, run_store

run_store.CALL_BATCH, run_store.CALL_FLUSH_SECONDS = 10**9, 10**9  # calls written only as items end
store = RunStore({folder!r})
model = Model(ScriptedProvider(respond, delay=0.01), cache=store)
run = functools.partial(run_item, model=model, config=MatrixConfig(num_roles=3, num_steps=3))
asyncio.run(run_items(store, load_items({prompts!r}), run, concurrency=3, progress=False))
"""


class NoCalls(ScriptedProvider):
    def __init__(self):
        super().__init__(lambda request: pytest.fail(f"a done item needed a call not in the cache: {request}"))


def test_kill_9_keeps_every_call_a_done_item_was_built_from(tmp_path):
    """Calls are written in batches, but with the item that used them: after a kill -9, every
    done item replays from the cache alone (a model that fails any call) to the same record."""
    import os
    import signal
    import time

    prompts, folder = items_file(tmp_path, 12), tmp_path / "run"
    script = KILLED_RUN.format(society=str(Path(__file__).parent), folder=str(folder), prompts=str(prompts))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done_ids(folder) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    store = RunStore(folder)
    done = dict((item.id, record) for item, record in store.done_records())
    assert 3 <= len(done) < 12, "the kill must land mid-run"
    store.db.execute("DELETE FROM items WHERE status != 'done'")
    store.db.execute("UPDATE items SET status='pending'")
    summary = run(store, [i for i in load_items(prompts) if i.id in done], NoCalls())
    assert summary.done == len(done) and summary.usage["cached_calls"] == summary.usage["calls"] > 0
    assert {i.id: r for i, r in store.done_records()} == done


def done_ids(folder):
    import sqlite3

    try:
        with sqlite3.connect(folder / "run.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE status='done'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_cached_calls_are_written_by_count_and_by_age(tmp_path, monkeypatch):
    from selfalign.store import run_store

    store = RunStore(tmp_path / "run")
    reader = RunStore.open_existing(tmp_path / "run")
    written = lambda: store.sync() or reader.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    monkeypatch.setattr(run_store, "CALL_BATCH", 3)
    store.put_call("a", {"text": "1"})
    store.put_call("b", {"text": "2"})
    assert written() == 0 and store.get_call("b") == {"text": "2"}  # kept in memory, read from there
    store.put_call("c", {"text": "3"})
    assert written() == 3  # a full batch
    monkeypatch.setattr(run_store, "CALL_FLUSH_SECONDS", 0.0)
    store.put_call("d", {"text": "4"})
    assert written() == 4  # the oldest unwritten call is old enough
    store.close()
    reader.close()
