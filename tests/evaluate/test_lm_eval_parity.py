"""TruthfulQA MC1/MC2 and HHH from `selfalign eval` equal lm-evaluation-harness's own figures
on the same model and files: every choice's log-likelihood, each figure and its standard
error, to 1e-4. lm-eval runs from its own venv (`make test-lm-eval` builds it: lm_eval pinned,
torch's CPU build), with its `hf` model padding batches of 4.
"""

import json
from pathlib import Path

import lmeval
import pytest
from clitools import selfalign

from selfalign.evaluate.likelihood import load_hhh

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not lmeval.available(), reason=f"lm-evaluation-harness is not installed in {lmeval.LM_EVAL_VENV}: run make test-lm-eval"),
]

DATA = Path(__file__).parent / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("parity")
    hhh_rows = lmeval.hhh_as_hub_rows(load_hhh(str(DATA / "hhh")), tmp / "hhh_hub.jsonl")
    truthfulqa = DATA / "truthfulqa_mc.jsonl"
    tasks = lmeval.write_tasks(tmp / "tasks", truthfulqa=truthfulqa, hhh=hhh_rows)
    lm_out = tmp / "lm_eval"
    lmeval.run(f"pretrained={tiny_model_dir},dtype=float32", tasks, tmp / "tasks", lm_out, batch_size="4")
    ours = tmp / "ours"
    selfalign("eval", "--model", f"hf:{tiny_model_dir}", "--bench", "truthfulqa_mc,hhh", "--data", f"truthfulqa_mc={truthfulqa}",
              "--data", f"hhh={hhh_rows}", "--out", ours, "--quiet", "--device", "cpu")
    figures = {(f["bench"], f["metric"]): f for f in json.loads((ours / "results.json").read_text())["figures"] if f["category"] is None}
    (run,) = (ours / "likelihood").iterdir()
    return {"lm_out": lm_out, "figures": figures, "run": run}


def our_records(run: Path, bench: str) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(run / "run.sqlite")
    rows = db.execute("select record from items where id like ? order by idx", (f"{bench}/%",)).fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("task, bench, metric", [
    ("local_truthfulqa_mc1", "truthfulqa_mc", "mc1"),
    ("local_truthfulqa_mc2", "truthfulqa_mc", "mc2"),
    ("local_hhh", "hhh", "acc"),
])
def test_figures_equal_lm_eval(compared, task, bench, metric):
    theirs = lmeval.results(compared["lm_out"])[task]
    ours = compared["figures"][(bench, metric)]
    assert ours["value"] == pytest.approx(theirs["acc"], abs=TOL)
    assert ours["details"]["stderr"] == pytest.approx(theirs["acc_stderr"], abs=TOL)


@pytest.mark.parametrize("task, bench, part", [
    ("local_truthfulqa_mc1", "truthfulqa_mc", 0),
    ("local_truthfulqa_mc2", "truthfulqa_mc", 1),
    ("local_hhh", "hhh", 0),
])
def test_every_choice_scores_as_in_lm_eval(compared, task, bench, part):
    samples = lmeval.samples(compared["lm_out"], task)
    records = our_records(compared["run"], bench)
    assert len(samples) == len(records)
    for sample, record in zip(samples, records):
        theirs = lmeval.loglikelihoods(sample)
        n1 = len(sample["doc"]["mc1_targets"]["choices"]) if bench == "truthfulqa_mc" else 0
        ours = record["loglikelihoods"][n1:] if part else record["loglikelihoods"][: n1 or None]
        assert ours == pytest.approx(theirs, abs=TOL)
