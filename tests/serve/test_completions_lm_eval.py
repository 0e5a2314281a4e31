"""lm-evaluation-harness's `local-completions` model evaluates a model that `selfalign serve`
serves: TruthfulQA MC1/MC2 and HHH through our /v1/completions give the figures, and every
choice the log-likelihood, that `selfalign eval` gives on the hf: model itself (which
tests/evaluate/test_lm_eval_parity.py checks against lm-eval's own `hf` model), to 1e-4.
lm-eval runs from its own venv (`make test-lm-eval`)."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import lmeval
import pytest
from clitools import selfalign

from selfalign.evaluate.likelihood import load_hhh

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not lmeval.available(), reason=f"lm-evaluation-harness is not installed in {lmeval.LM_EVAL_VENV}: run make test-lm-eval"),
]

DATA = Path(__file__).parent.parent / "evaluate" / "data"
TOL = 1e-4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """`selfalign serve` on the tiny model, as a user starts it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfalign.cli.main", "serve", "--model", f"hf:{tiny_model_dir}", "--port", str(port),
         "--served-name", "tiny"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url + "/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "selfalign serve did not start"
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.communicate(timeout=15)


def test_lm_eval_local_completions_through_selfalign_serve(served, tiny_model_dir, tmp_path):
    hhh_rows = lmeval.hhh_as_hub_rows(load_hhh(str(DATA / "hhh")), tmp_path / "hhh_hub.jsonl")
    truthfulqa = DATA / "truthfulqa_mc.jsonl"
    tasks = lmeval.write_tasks(tmp_path / "tasks", truthfulqa=truthfulqa, hhh=hhh_rows)
    lm_out = tmp_path / "lm_eval"
    model_args = (f"model=tiny,base_url={served}/v1/completions,tokenizer={tiny_model_dir},"
                  "tokenizer_backend=huggingface,num_concurrent=4,max_retries=1")
    lmeval.run(model_args, tasks, tmp_path / "tasks", lm_out, model="local-completions", batch_size="8")

    ours = tmp_path / "ours"
    selfalign("eval", "--model", f"hf:{tiny_model_dir}", "--bench", "truthfulqa_mc,hhh", "--data", f"truthfulqa_mc={truthfulqa}",
              "--data", f"hhh={hhh_rows}", "--out", ours, "--quiet", "--device", "cpu")
    figures = {(f["bench"], f["metric"]): f for f in json.loads((ours / "results.json").read_text())["figures"] if f["category"] is None}
    theirs = lmeval.results(lm_out)
    for task, key in [("local_truthfulqa_mc1", ("truthfulqa_mc", "mc1")), ("local_truthfulqa_mc2", ("truthfulqa_mc", "mc2")),
                      ("local_hhh", ("hhh", "acc"))]:
        assert figures[key]["value"] == pytest.approx(theirs[task]["acc"], abs=TOL), task
        assert figures[key]["details"]["stderr"] == pytest.approx(theirs[task]["acc_stderr"], abs=TOL), task

    (run,) = (ours / "likelihood").iterdir()
    db = sqlite3.connect(run / "run.sqlite")
    records = [json.loads(r[0]) for r in db.execute("select record from items where id like 'truthfulqa_mc/%' order by idx")]
    for mc1, mc2, record in zip(lmeval.samples(lm_out, "local_truthfulqa_mc1"), lmeval.samples(lm_out, "local_truthfulqa_mc2"), records):
        assert lmeval.loglikelihoods(mc1) + lmeval.loglikelihoods(mc2) == pytest.approx(record["loglikelihoods"], abs=TOL)
        n1 = len(mc1["doc"]["mc1_targets"]["choices"])
        assert [str(r[0][1]) == "True" for r in mc1["resps"]] == record["is_greedy"][:n1]
