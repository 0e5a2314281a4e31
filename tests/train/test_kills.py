"""Training survives kills at any instant, checkpoint writes included: the same command resumes
from the last complete checkpoint (an incomplete one is never chosen), and a finished run rerun
does nothing and says so."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest


def train_command(model, data, out, steps):
    return [sys.executable, "-m", "selfalign.cli.main", "train", "--method", "sft", "--model", str(model),
            "--data", str(data), "--out", str(out), "--max-steps", str(steps), "--save-steps", "1",
            "--save-total-limit", "2", "--batch-size", "2", "--no-bf16", "--lr", "0.001"]


def run(cmd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def new_checkpoint_started(out, seen):
    """Whether a checkpoint folder not in `seen` appeared (its files are being written now)."""
    names = {p.name for p in out.glob("checkpoint-*")} if out.is_dir() else set()
    fresh = names - seen
    seen |= names
    return bool(fresh)


@pytest.mark.slow
def test_kills_at_random_instants_then_the_same_command_finishes(tiny_lm, data_dir, tmp_path):
    """30 SIGKILLs: half at a random instant, half a random 0-40 ms after a checkpoint folder
    appears, i.e. while the Trainer writes its files. Every restart must go on from where the
    last complete checkpoint left it; the last one finishes the 40 steps."""
    out = tmp_path / "out"
    cmd = train_command(tiny_lm, data_dir / "sft.jsonl", out, steps=40)
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills, in_writes, failures = 0, 0, []
    for attempt in range(30):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        if attempt % 2:
            seen = {p.name for p in out.glob("checkpoint-*")} if out.is_dir() else set()
            deadline = time.monotonic() + 60
            while proc.poll() is None and not new_checkpoint_started(out, seen) and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.04))
        else:
            time.sleep(rng.uniform(1.0, 12.0))
        if proc.poll() is not None:  # it finished (or failed) before the kill
            err = proc.stderr.read()
            if proc.returncode != 0:
                failures.append(err[-3000:])
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills += 1
        in_writes += attempt % 2
    assert not failures, failures[0]
    final = run(cmd)
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 10 and in_writes >= 5
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 40
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def train_in_process(cmd, capsys):
    """The same command, run by main() in this process (no start-up cost); (exit code, stdout)."""
    from selfalign.cli.main import main

    code = main(cmd[3:])
    return code, capsys.readouterr().out


def test_a_finished_run_rerun_does_nothing_and_says_so(tiny_lm, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    cmd = train_command(tiny_lm, data_dir / "sft.jsonl", out, steps=2)
    assert train_in_process(cmd, capsys)[0] == 0
    weights = (out / "model.safetensors").stat().st_mtime_ns
    code, said = train_in_process(cmd, capsys)
    assert code == 0
    assert f"{out} already holds the model this command trains (2 steps); nothing to do" in said
    assert (out / "model.safetensors").stat().st_mtime_ns == weights


def test_a_checkpoint_cut_short_is_never_resumed_from(tiny_lm, data_dir, tmp_path, capsys):
    """A kill inside a checkpoint write leaves checkpoint-N without (or with half) its
    trainer_state.json; the rerun resumes from the one before and removes it."""
    from selfalign.train.checkpoint import last_checkpoint

    out = tmp_path / "out"
    cmd = train_command(tiny_lm, data_dir / "sft.jsonl", out, steps=3)
    assert train_in_process(cmd, capsys)[0] == 0
    (out / "train_summary.json").unlink()
    cut = out / "checkpoint-3"
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:1000])
    state = (cut / "trainer_state.json").read_text()
    (cut / "trainer_state.json").write_text(state[: len(state) // 2])
    assert last_checkpoint(out) == out / "checkpoint-2"
    assert train_in_process(cmd, capsys)[0] == 0
    assert json.loads((out / "train_summary.json").read_text())["resumed_from"] == str(out / "checkpoint-2")


def test_record_kind_is_checked_before_the_model_loads(data_dir, tmp_path, capsys):
    """SFT records for DPO: refused with the file and line though the model does not exist."""
    from selfalign.cli.main import main

    code = main(["train", "--method", "dpo", "--model", str(tmp_path / "no-model"),
                 "--data", str(data_dir / "sft.jsonl"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data_dir / 'sft.jsonl'}:1: --method dpo needs preference pairs" in err


def test_a_full_disk_while_training_is_a_clear_error(tiny_lm, data_dir, tmp_path, capsys, monkeypatch):
    """Libraries report a full disk their own ways (safetensors: a SafetensorError); the run
    stops with the folder and the space left, exit 2. (Checked by hand on a full tmpfs: the
    rerun with space removes the half-written checkpoint and resumes from the one before.)"""
    from selfalign.cli.main import main
    from selfalign.train import run as run_module

    def full(*_args):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(run_module, "_train", full)
    out = tmp_path / "out"
    code = main(train_command(tiny_lm, data_dir / "sft.jsonl", out, steps=2)[3:])
    err = capsys.readouterr().err
    assert code == 2 and f"{out}: the disk is full (" in err and "MiB free of" in err
