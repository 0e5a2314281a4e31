"""`accelerate launch` with two CPU processes (gloo) trains to the losses of one process with the
same global batch: each step sees the same samples (the Trainer's sampler, sharded by accelerate)
and the loss is averaged over all of them (tokens across processes for SFT, groups for Stable
Alignment). On a machine without GPUs, `--multi_gpu` is what starts the processes (accelerate's
torchrun launcher; inside, the Trainer runs on CPU and accelerate picks gloo), while
`--cpu --num_processes 2` starts a single process unless MPI is installed (its multi-CPU launcher
is mpirun). Slow: about a minute."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

DATA = {"sft": "sft.jsonl", "stable": "groups.jsonl"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logged_losses(out):
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def run(command, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return logged_losses(out)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "stable"])
def test_two_processes_train_to_the_losses_of_one_with_the_same_global_batch(method, tiny_lm, data_dir, tmp_path):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    assert accelerate, "accelerate's launcher comes with the train extra"
    train = ["-m", "selfalign.cli.main", "train", "--method", method, "--model", tiny_lm, "--data", data_dir / DATA[method],
             "--max-steps", 3, "--lr", "1e-3", "--warmup-ratio", 0, "--logging-steps", 1, "--save-steps", 100,
             "--seed", 0, "--no-bf16"]
    # 6 records, a global batch of 2: three whole steps of one epoch, the same samples either way
    one = run([sys.executable, *train, "--batch-size", 2, "--out", tmp_path / "one"], tmp_path / "one")
    two = run([accelerate, "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1, "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", free_port(),
               *train, "--batch-size", 1, "--out", tmp_path / "two"], tmp_path / "two")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=1e-4), (one, two)
    assert one[-1] < one[0]  # it trained
