"""critique-revise end to end through the CLI, on the scripted provider: run, kill, resume, export."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from clitools import selfalign


@pytest.fixture
def scripted(tmp_path):
    rules = tmp_path / "replies.jsonl"
    rules.write_text(
        json.dumps({"match": "Critique", "replies": ["It could cause harm.", "It is fine."], "delay": 0.02}) + "\n"
        + json.dumps({"match": "Rewrite", "replies": ["A safer answer.", "A kinder answer."], "delay": 0.02}) + "\n"
        + json.dumps({"match": "", "replies": ["First answer.", "Another first answer."], "delay": 0.02}) + "\n"
    )
    return f"scripted:{rules}"


def prompts_file(tmp_path, n):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"instruction number {i}"}) + "\n" for i in range(n)))
    return path


def done_count(run_dir):
    try:
        db = sqlite3.connect(run_dir / "run.sqlite")
        (n,) = db.execute("SELECT COUNT(*) FROM items WHERE status='done'").fetchone()
        db.close()
        return n
    except sqlite3.Error:
        return 0


def test_run_and_exports(tmp_path, scripted):
    prompts = prompts_file(tmp_path, 4)
    out = tmp_path / "run"
    proc = selfalign("critique-revise", "--model", scripted, "--prompts", prompts, "--out", out, "--quiet")
    assert "4 done, 0 failed" in proc.stdout
    selfalign("export", out, "--format", "sft", "--to", tmp_path / "sft.jsonl")
    selfalign("export", out, "--format", "preference", "--to", tmp_path / "pref.parquet")
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert rows[0]["messages"][0] == {"role": "user", "content": "instruction number 0"}
    assert rows[0]["messages"][1]["role"] == "assistant"
    assert rows[0]["messages"][1]["content"] in ("A safer answer.", "A kinder answer.")
    from datasets import load_dataset

    prefs = load_dataset("parquet", data_files=str(tmp_path / "pref.parquet"), split="train")
    assert set(prefs.column_names) == {"prompt", "chosen", "rejected"}
    assert prefs[0]["rejected"][0]["content"] in ("First answer.", "Another first answer.")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["usage"]["calls"] == 12


def test_bad_input_stops_before_any_work(tmp_path, scripted):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "oops",}\n')
    proc = selfalign("critique-revise", "--model", scripted, "--prompts", bad, "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2
    assert f"{bad}:2: broken JSON" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_resume_refuses_other_settings(tmp_path, scripted):
    prompts = prompts_file(tmp_path, 2)
    out = tmp_path / "run"
    selfalign("critique-revise", "--model", scripted, "--prompts", prompts, "--out", out, "--quiet")
    proc = selfalign("critique-revise", "--model", scripted, "--prompts", prompts, "--out", out, "--seed", "9", check=False)
    assert proc.returncode == 2 and "other settings" in proc.stderr and "seed" in proc.stderr


def test_sigkill_mid_run_then_resume_gives_every_item_once(tmp_path, scripted):
    n = 40
    prompts = prompts_file(tmp_path, n)
    args = ["critique-revise", "--model", scripted, "--prompts", prompts, "--concurrency", "3", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "selfalign.cli.main", *map(str, args), "--out", str(killed)])
    deadline = time.monotonic() + 60
    while done_count(killed) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= done_count(killed) < n, "the kill must land mid-run"

    selfalign(*args, "--out", killed)
    selfalign(*args, "--out", tmp_path / "clean")
    for run in (killed, tmp_path / "clean"):
        selfalign("export", run, "--format", "sft", "--to", run / "sft.jsonl")
    resumed = (killed / "sft.jsonl").read_text().splitlines()
    assert len(resumed) == n
    assert resumed == (tmp_path / "clean" / "sft.jsonl").read_text().splitlines()  # nothing lost, nothing twice


class _Recorder:
    """A model that records each conversation it is asked to continue."""

    def __init__(self):
        self.calls = []

    async def chat(self, messages, **_):
        from types import SimpleNamespace

        self.calls.append([dict(m) for m in messages])
        return SimpleNamespace(text=f"reply {len(self.calls)}")


def test_exemplars_come_before_the_critique_and_revision_not_the_answer():
    import asyncio

    from selfalign.methods.critique import CritiqueConfig, load_exemplars, load_principles, run_item
    from selfalign.store.inputs import Item

    exemplars = load_exemplars(None)
    model = _Recorder()
    item = Item("a", 0, ({"role": "user", "content": "How do I pick a lock?"},))
    record = asyncio.run(run_item(item, model, CritiqueConfig(), load_principles(None), exemplars=exemplars))
    answer, critique, revision = model.calls
    assert answer == [{"role": "user", "content": "How do I pick a lock?"}]  # the model's own answer
    shots = 6 * len(exemplars)
    assert critique[:shots] == [turn for e in exemplars for turn in e.turns()]
    assert critique[shots]["content"] == "How do I pick a lock?" and critique[shots + 1]["content"] == "reply 1"
    assert revision[: len(critique)] == critique and revision[len(critique)]["content"] == "reply 2"
    assert record.revision == "reply 3" and record.red_team


def test_a_helpfulness_prompt_is_answered_only_and_its_answer_kept(tmp_path, scripted):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "harmful", "red_team": True}) + "\n" + json.dumps({"prompt": "look-alike", "red_team": False}) + "\n")
    out = tmp_path / "run"
    selfalign("critique-revise", "--model", scripted, "--prompts", prompts, "--out", out, "--quiet")
    assert json.loads((out / "summary.json").read_text())["usage"]["calls"] == 4  # 3 + 1
    selfalign("export", out, "--format", "sft", "--to", tmp_path / "sft.jsonl")
    rows = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in map(json.loads, (tmp_path / "sft.jsonl").read_text().splitlines())}
    assert rows["look-alike"] in ("First answer.", "Another first answer.")
    assert rows["harmful"] in ("A safer answer.", "A kinder answer.")
    selfalign("export", out, "--format", "preference", "--to", tmp_path / "pref.jsonl")
    assert len((tmp_path / "pref.jsonl").read_text().splitlines()) == 1


def test_a_bad_exemplars_file_stops_before_any_work(tmp_path, scripted):
    bad = tmp_path / "exemplars.jsonl"
    bad.write_text(json.dumps({"request": "q", "answer": "a"}) + "\n")
    proc = selfalign("critique-revise", "--model", scripted, "--prompts", prompts_file(tmp_path, 1), "--exemplars", bad,
                     "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2 and f"{bad}:1: bad exemplar (critique_request" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_revision_start_is_continued_by_the_model():
    import asyncio

    from selfalign.methods.critique import CritiqueConfig, load_principles, run_item
    from selfalign.store.inputs import Item

    model = _Recorder()
    item = Item("a", 0, ({"role": "user", "content": "How do I pick a lock?"},))
    config = CritiqueConfig(revision_start="I can't help with that.")
    record = asyncio.run(run_item(item, model, config, load_principles(None), exemplars=[]))
    assert model.calls[2][-1] == {"role": "assistant", "content": "I can't help with that."}  # continued, not answered anew
    assert record.revision == "I can't help with that.reply 3" and record.critique == "reply 2"


class _EndsAtOnce(_Recorder):
    """A model whose every reply is empty, as a tiny model's may be."""

    async def chat(self, messages, **kw):
        reply = await super().chat(messages, **kw)
        reply.text = "" if len(self.calls) == 3 else reply.text
        return reply


def test_a_started_revision_the_model_ends_at_once_is_its_start():
    import asyncio

    from selfalign.methods.critique import CritiqueConfig, load_principles, run_item
    from selfalign.store.inputs import Item

    item = Item("a", 0, ({"role": "user", "content": "How do I pick a lock?"},))
    config = CritiqueConfig(revision_start="I can't help with that.")
    record = asyncio.run(run_item(item, _EndsAtOnce(), config, load_principles(None), exemplars=[]))
    assert record.revision == "I can't help with that."
