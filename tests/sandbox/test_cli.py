"""`selfalign sandbox` end to end: scripted (subprocess, with resume) and the tiny transformers model."""

import argparse
import json
import subprocess
import sys

import pytest
from clitools import selfalign

@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "rules.jsonl"
    lines = [
        {"match": "impartial observer", "replies": [{"rating": 6, "reason": "kind"}, {"rating": 3, "reason": "curt"}]},
        {"match": "Neighbour's answer", "replies": [{"rating": 5, "reason": "fair"}, {"rating": 2, "reason": "rude"}]},
        {"match": "Revise your answer", "replies": ["A gentler answer.", "A more careful answer."]},
        {"match": "", "replies": ["A first answer.", "Another first answer."]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"scripted:{path}"


def test_cli_run_resume_and_exports(tmp_path, rules, questions_file):
    out = tmp_path / "run"
    args = ["sandbox", "--model", rules, "--questions", questions_file, "--grid", 3, "--rounds", 2,
            "--radius", 2, "--raters", 4, "--out", out, "--quiet", "--mix", "all"]
    proc = selfalign(*args)
    assert "round 1/2: alignment" in proc.stdout and "round 2/2: alignment" in proc.stdout
    assert "18 turns done, 0 failed" in proc.stdout
    groups = [json.loads(line) for line in (out / "data" / "groups.jsonl").read_text().splitlines()]
    assert groups and all(1.0 <= r <= 7.0 for row in groups for r in row["ratings"])
    assert all(set(row) == {"prompt", "responses", "ratings"} for row in groups)
    summary = json.loads((out / "summary.json").read_text())
    assert [m["round"] for m in summary["rounds"]] == [1, 2] and summary["items"]["done"] == 18
    first = (out / "data" / "groups.jsonl").read_text()

    again = selfalign(*args)  # a finished run: nothing new is computed
    assert again.stdout.count("(finished earlier)") == 2
    assert (out / "data" / "groups.jsonl").read_text() == first

    changed = selfalign(*[a if a != 2 else 3 for a in args], check=False)  # --rounds 3 -> other settings
    assert changed.returncode == 2 and "other settings" in changed.stderr


def test_cli_checks_options_before_any_model_call(tmp_path, rules, questions_file):
    proc = selfalign("sandbox", "--model", rules, "--questions", questions_file, "--grid", 2, "--rounds", 1,
                     "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2 and "fewer than --raters 4" in proc.stderr
    assert not (tmp_path / "run").exists()
    bad = tmp_path / "stances.jsonl"
    bad.write_text('{"stance": "good", "question": "q"}\n')
    proc = selfalign("sandbox", "--model", rules, "--questions", questions_file, "--grid", 2, "--raters", 2,
                     "--stances", bad, "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2 and "stances.jsonl:1: bad stance pair (answer" in proc.stderr


def test_tiny_model_one_round(tmp_path, tiny_model_dir, questions_file):
    pytest.importorskip("selfalign.llm.hf")
    from selfalign.cli import sandbox

    parser = argparse.ArgumentParser()
    sandbox.register(parser.add_subparsers())
    out = tmp_path / "run"
    args = parser.parse_args([
        "sandbox", "--model", f"hf:{tiny_model_dir}", "--questions", str(questions_file), "--grid", "2",
        "--rounds", "1", "--raters", "2", "--out", str(out), "--max-tokens", "64", "--revision-max-tokens", "64",
        "--judge-max-tokens", "160", "--device", "cpu", "--quiet",
    ])
    try:
        sandbox.run(args)
    except Exception as exc:  # a round whose every turn failed stops with the first reason
        assert "every agent's turn failed" in str(exc)
    from selfalign.store import RunStore

    store = RunStore(out)
    assert store.counts()["done"] + store.counts()["failed"] == 4 and store.counts()["done"] >= 1
    for _, rec in store.done_records():
        assert len(rec["feedback"]) == 2
        for f in rec["feedback"]:  # a real rating in 1..7, or a failed one with its reason: never a placeholder
            assert (f["rating"] is not None and 1 <= f["rating"] <= 7) or (f["rating"] is None and f["error"])
    for _, reason in store.failures():
        assert reason


def test_random_model_one_round_never_trains_on_cut_text(tmp_path, random_model_dir, questions_file):
    """The random tiny model never ends its turn: every draft is cut at --max-tokens, asked
    again with twice the budget, cut again, so every turn fails with that reason and no cut text
    becomes data."""
    pytest.importorskip("selfalign.llm.hf")
    from selfalign.cli import sandbox
    from selfalign.errors import UserError

    parser = argparse.ArgumentParser()
    sandbox.register(parser.add_subparsers())
    out = tmp_path / "run"
    args = parser.parse_args([
        "sandbox", "--model", f"hf:{random_model_dir}", "--questions", str(questions_file), "--grid", "2",
        "--rounds", "1", "--raters", "2", "--out", str(out), "--max-tokens", "8", "--judge-max-tokens", "160",
        "--device", "cpu", "--quiet",
    ])
    with pytest.raises(UserError, match=r"every agent's turn failed.*cut at 16 tokens \(finish_reason 'length'\)"):
        sandbox.run(args)
    from selfalign.store import RunStore

    store = RunStore(out)
    assert store.counts()["failed"] == 4 and not list(store.done_records())


def _done_ids(run_dir):
    import sqlite3

    try:
        db = sqlite3.connect(run_dir / "run.sqlite")
        ids = [r[0] for r in db.execute("SELECT id FROM items WHERE status='done'")]
        db.close()
        return ids
    except sqlite3.Error:
        return []


def test_sigkill_mid_round_then_resume_matches_a_clean_run(tmp_path, questions_file):
    import os
    import signal
    import time

    path = tmp_path / "rules.jsonl"  # every reply takes a while, so the kill lands mid-round
    lines = [
        {"match": "impartial observer", "replies": [{"rating": 6, "reason": "kind"}, {"rating": 3, "reason": "curt"}], "delay": 0.02},
        {"match": "Neighbour's answer", "replies": [{"rating": 5, "reason": "fair"}, {"rating": 2, "reason": "rude"}], "delay": 0.02},
        {"match": "Revise your answer", "replies": ["A gentler answer.", "A more careful answer."], "delay": 0.02},
        {"match": "", "replies": ["A first answer.", "Another first answer."], "delay": 0.02},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["sandbox", "--model", f"scripted:{path}", "--questions", questions_file, "--grid", 4, "--rounds", 2,
            "--raters", 4, "--concurrency", 3, "--quiet", "--mix", "all"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "selfalign.cli.main", *map(str, args), "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(i.startswith("r002") for i in _done_ids(killed)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    round2 = sum(i.startswith("r002") for i in _done_ids(killed))
    assert 3 <= round2 < 16, "the kill must land mid-round 2"

    selfalign(*args, "--out", killed)
    selfalign(*args, "--out", tmp_path / "clean")
    for name in ("groups.jsonl", "preference.jsonl", "sft.jsonl"):
        assert (killed / "data" / name).read_text() == (tmp_path / "clean" / "data" / name).read_text()
    assert len(_done_ids(killed)) == 32
    from selfalign.store import RunStore

    records = [list(RunStore(run).done_records()) for run in (killed, tmp_path / "clean")]
    assert [(i.id, r) for i, r in records[0]] == [(i.id, r) for i, r in records[1]]


def test_selfalign_export_reads_a_sandbox_run(tmp_path, rules, questions_file):
    from types import SimpleNamespace

    from selfalign.cli import export

    out = tmp_path / "run"
    selfalign("sandbox", "--model", rules, "--questions", questions_file, "--grid", 2, "--raters", 2,
              "--rounds", 1, "--out", out, "--quiet")
    for fmt in ("groups", "preference", "sft"):
        export.run(SimpleNamespace(run=str(out), format=fmt, to=str(tmp_path / f"{fmt}.jsonl"), failures=False))
    rows = [json.loads(line) for line in (tmp_path / "groups.jsonl").read_text().splitlines()]
    asked = {json.loads(line)["prompt"] for line in questions_file.read_text().splitlines()}
    imitation = [row for row in rows if row["prompt"][-1]["content"] in asked]  # pooled per question
    assert imitation and len(rows) - len(imitation) >= 4  # self-critic of each of the 4 turns (no mix here)
    assert all(1.0 <= r <= 7.0 for row in rows for r in row["ratings"])


def test_groups_export_trains_with_stable(tmp_path, rules, questions_file, tiny_model_dir):
    """The path in `train --help`'s example is where `sandbox --out` of that example writes."""
    from selfalign.cli.main import build_parser

    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    example = commands.choices["train"].description.split()
    groups = example[example.index("--data") + 1]
    out = groups.split("/data/")[0]
    selfalign("sandbox", "--model", rules, "--questions", questions_file, "--grid", 3, "--rounds", 1,
              "--radius", 2, "--raters", 4, "--out", out, "--quiet", "--mix", "all", cwd=tmp_path)
    assert (tmp_path / groups).is_file()
    trained = selfalign("train", "--method", "stable", "--model", tiny_model_dir, "--data", groups, "--out", "ckpt",
                        "--max-steps", 2, "--batch-size", 4, "--max-length", 256, "--no-bf16", "--quiet", cwd=tmp_path)
    assert json.loads((tmp_path / "ckpt" / "train_summary.json").read_text())["method"] == "stable"
    assert "training: " not in trained.stderr and "%" not in trained.stderr  # --quiet: no bar
