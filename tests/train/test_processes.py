"""Two CPU processes (gloo) train to the losses of one process with the same global batch: each
step sees the same samples (the Trainer's sampler, sharded by accelerate) and the loss is averaged
over all of them (tokens across processes for SFT, groups for Stable Alignment). On CPU the
processes are started by torchrun: `accelerate launch --cpu --num_processes 2` starts one process
unless MPI is installed (its multi-CPU launcher is mpirun); inside, the Trainer's accelerate sees
WORLD_SIZE and runs gloo, as under `accelerate launch` on GPUs. Slow: about a minute."""

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
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    train = ["-m", "selfalign.cli.main", "train", "--method", method, "--model", tiny_lm, "--data", data_dir / DATA[method],
             "--max-steps", 3, "--lr", "1e-3", "--warmup-ratio", 0, "--logging-steps", 1, "--save-steps", 100,
             "--seed", 0, "--no-bf16"]
    # 6 records, a global batch of 2: three whole steps of one epoch, the same samples either way
    one = run([sys.executable, *train, "--batch-size", 2, "--out", tmp_path / "one"], tmp_path / "one")
    two = run([torchrun, "--nproc_per_node", 2, "--master_port", free_port(),
               *train, "--batch-size", 1, "--out", tmp_path / "two"], tmp_path / "two")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=1e-4), (one, two)
    assert one[-1] < one[0]  # it trained
