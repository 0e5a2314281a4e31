"""CrowS-Pairs (English, French, per bias type), BBQ (accuracies and bias scores, per category),
the five ETHICS subsets and ToxiGen from `selfalign eval` equal lm-evaluation-harness 0.4.13's
own tasks on the same model and files: every figure and standard error, and every choice's
log-likelihood, to 1e-4. lm-eval reads the CrowS-Pairs and ToxiGen CSVs and the BBQ rows as
they are, and the ETHICS rows in the hub's form (`EleutherAI/hendrycks_ethics`), written here
from the release's CSVs that selfalign reads.
"""

import csv
import json
import math
import sqlite3
from pathlib import Path

import lmeval
import pytest
from clitools import selfalign

from selfalign.evaluate.ethics import load_ethics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not lmeval.available(), reason=f"lm-evaluation-harness is not installed in {lmeval.LM_EVAL_VENV}: run make test-lm-eval"),
]

DATA = Path(__file__).parent / "data"
TOL = 1e-4
CROWS_TYPES = ("age", "socioeconomic", "gender", "disability")
ETHICS_TASKS = {"commonsense": "ethics_cm", "deontology": "ethics_deontology", "justice": "ethics_justice",
                "utilitarianism": "ethics_utilitarianism", "virtue": "ethics_virtue"}


def ethics_hub_rows(folder: Path) -> dict[str, Path]:
    """The release's CSVs as the hub's rows, one JSONL per subset."""
    def rows(name, header=True):
        with (DATA / "ethics" / name).open(newline="") as f:
            return list(csv.DictReader(f)) if header else [dict(zip(("activity", "baseline"), r)) for r in csv.reader(f)]
    hub = {
        "commonsense": [{"label": int(r["label"]), "input": r["input"], "is_short": True, "edited": False} for r in rows("cm_test.csv")],
        "deontology": [{"group_id": 0, "label": int(r["label"]), "scenario": r["scenario"], "excuse": r["excuse"]} for r in rows("deontology_test.csv")],
        "justice": [{"group_id": 0, "label": int(r["label"]), "scenario": r["scenario"]} for r in rows("justice_test.csv")],
        "utilitarianism": [{**r, "rating": ""} for r in rows("util_test.csv", header=False)],
        "virtue": [{"group_id": 0, "label": int(r["label"]), "scenario": r["scenario"].split(" [SEP] ")[0],
                    "trait": r["scenario"].split(" [SEP] ")[1]} for r in rows("virtue_test.csv")],
    }
    out = {}
    for subset, docs in hub.items():
        out[subset] = folder / f"{subset}.jsonl"
        out[subset].write_text("".join(json.dumps(d) + "\n" for d in docs))
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("bias_parity")
    bbq = tmp / "bbq.jsonl"
    bbq.write_text("".join((DATA / "bbq" / f).read_text() for f in ("Age.jsonl", "Gender_identity.jsonl")))
    ethics = ethics_hub_rows(tmp)
    files = {"crows_pairs_english": DATA / "crows_pairs.csv", "crows_pairs_french": DATA / "crows_pairs_french.jsonl",
             **{f"crows_pairs_english_{t}": DATA / "crows_pairs.csv" for t in CROWS_TYPES},
             "bbq": bbq, "toxigen": DATA / "toxigen.csv", **{ETHICS_TASKS[s]: path for s, path in ethics.items()}}
    tasks = lmeval.write_bias_tasks(tmp / "tasks", files)
    lm_out = tmp / "lm_eval"
    lmeval.run(f"pretrained={tiny_model_dir},dtype=float32", tasks, tmp / "tasks", lm_out, batch_size="4")
    ours = tmp / "ours"
    selfalign("eval", "--model", f"hf:{tiny_model_dir}", "--bench", "crows-pairs,crows-pairs-french,bbq,ethics,toxigen",
              "--data", f"crows-pairs={DATA / 'crows_pairs.csv'}", "--data", f"crows-pairs-french={DATA / 'crows_pairs_french.jsonl'}",
              "--data", f"bbq={DATA / 'bbq'}", "--data", f"ethics={DATA / 'ethics'}", "--data", f"toxigen={DATA / 'toxigen.csv'}",
              "--out", ours, "--quiet", "--device", "cpu", "--resamples", "200")
    figures = {(f["bench"], f["metric"], f["category"]): f for f in json.loads((ours / "results.json").read_text())["figures"]}
    (run,) = (ours / "likelihood").iterdir()
    return {"lm": lmeval.metrics(lm_out), "lm_out": lm_out, "figures": figures, "run": run}


def records(run: Path, bench: str) -> list[dict]:
    db = sqlite3.connect(run / "run.sqlite")
    rows = db.execute("select record from items where id like ? order by idx", (f"{bench}/%",)).fetchall()
    return [json.loads(r[0]) for r in rows]


def same(ours: dict, theirs: dict, metric: str) -> None:
    value = theirs[metric]
    if isinstance(value, float) and math.isnan(value):
        assert ours["value"] is None
    else:
        assert ours["value"] == pytest.approx(value, abs=TOL)
    stderr = theirs.get(f"{metric}_stderr")
    if isinstance(stderr, float):
        assert ours["details"]["stderr"] == pytest.approx(stderr, abs=TOL)
    else:  # lm-eval gives no standard error for its own aggregations ("N/A")
        assert ours["details"]["stderr"] is None


@pytest.mark.parametrize("task, bench, category", [
    ("crows_pairs_english", "crows-pairs", None), ("crows_pairs_french", "crows-pairs-french", None),
    *[(f"crows_pairs_english_{t}", "crows-pairs", t) for t in CROWS_TYPES],
])
def test_crows_pairs_equal_lm_eval(compared, task, bench, category):
    for metric in ("likelihood_diff", "pct_stereotype"):
        same(compared["figures"][(bench, metric, category)], compared["lm"][f"local_{task}"], metric)


@pytest.mark.parametrize("metric", ["acc", "accuracy_amb", "accuracy_disamb", "amb_bias_score", "disamb_bias_score"])
def test_bbq_equals_lm_eval(compared, metric):
    same(compared["figures"][("bbq", metric, None)], compared["lm"]["local_bbq"], metric)


@pytest.mark.parametrize("category", ["Age", "Gender_identity"])
@pytest.mark.parametrize("metric", ["amb_bias_score", "disamb_bias_score"])
def test_bbq_bias_per_category_equals_lm_eval(compared, category, metric):
    theirs = compared["lm"]["local_bbq"][f"{metric}_{category}"]
    assert compared["figures"][("bbq", metric, category)]["value"] == pytest.approx(theirs, abs=TOL)


@pytest.mark.parametrize("subset", list(ETHICS_TASKS))
def test_ethics_subsets_equal_lm_eval(compared, subset):
    same(compared["figures"][("ethics", "acc", subset)], compared["lm"][f"local_{ETHICS_TASKS[subset]}"], "acc")


@pytest.mark.parametrize("metric", ["acc", "acc_norm"])
def test_toxigen_equals_lm_eval(compared, metric):
    same(compared["figures"][("toxigen", metric, None)], compared["lm"]["local_toxigen"], metric)


@pytest.mark.parametrize("task, bench", [("crows_pairs_english", "crows-pairs"), ("crows_pairs_french", "crows-pairs-french"),
                                         ("bbq", "bbq"), ("toxigen", "toxigen")])
def test_every_choice_scores_as_in_lm_eval(compared, task, bench):
    samples = lmeval.samples(compared["lm_out"], f"local_{task}")
    ours = records(compared["run"], bench)
    assert len(samples) == len(ours)
    for sample, record in zip(samples, ours):
        assert record["loglikelihoods"] == pytest.approx(lmeval.loglikelihoods(sample), abs=TOL)


def test_every_ethics_choice_scores_as_in_lm_eval(compared):
    ours = records(compared["run"], "ethics")
    subsets = [item.extra["categories"][0] for item in load_ethics(str(DATA / "ethics"))]
    for subset, task in ETHICS_TASKS.items():
        samples = lmeval.samples(compared["lm_out"], f"local_{task}")
        mine = [r for r, s in zip(ours, subsets) if s == subset]
        assert len(samples) == len(mine) > 0
        for sample, record in zip(samples, mine):
            assert record["loglikelihoods"] == pytest.approx(lmeval.loglikelihoods(sample), abs=TOL)


BBQ_DRIVER = """
import importlib.util, json, sys
import datasets
spec = importlib.util.spec_from_file_location("bbq_utils", sys.argv[1])
utils = importlib.util.module_from_spec(spec)
spec.loader.exec_module(utils)
docs = [json.loads(line) for line in open(sys.argv[2])]
answers = json.loads(sys.argv[3])
processed = utils.process_docs(datasets.Dataset.from_list(docs))
per_metric = {}
for doc, answer in zip(processed, answers):
    lls = [-5.0] * len(utils.doc_to_choice(doc))
    lls[answer] = -1.0
    for name, value in utils.process_results_multiple_choice(doc, [(ll, False) for ll in lls]).items():
        per_metric.setdefault(name, []).append(value)
agg = {"acc": lambda v: sum(v) / len(v), "accuracy_amb": utils.agg_accuracy_amb, "accuracy_disamb": utils.agg_accuracy_disamb}
out = {}
for name, values in per_metric.items():
    fn = agg.get(name) or (utils.agg_amb_bias_scores if name.startswith("amb_") else utils.agg_disamb_bias_scores)
    out[name] = float(fn(values))
print(json.dumps(out))
"""


def test_bbq_bias_scores_equal_lm_eval_on_chosen_answers(tmp_path):
    """The model's answer fixed by hand (every choice in turn, across copies of the rows), so the
    biased, "unknown" and correct answers all occur: lm-eval's own process_docs, process_results
    and aggregations against ours, overall and per category."""
    import subprocess

    from selfalign.evaluate.bias import bbq_aggregate, load_bbq

    rows = [line for f in ("Age.jsonl", "Gender_identity.jsonl") for line in (DATA / "bbq" / f).read_text().splitlines()]
    docs = tmp_path / "bbq.jsonl"
    docs.write_text("".join(rows[i % len(rows)] + "\n" for i in range(48)))
    answers = [(i * 7 + i // 8) % 12 if i % 3 else i % 2 for i in range(48)]  # the two people often, every unknown sometimes
    proc = subprocess.run([str(lmeval.LM_EVAL_PYTHON), "-c", BBQ_DRIVER, str(lmeval.tasks_dir() / "bbq" / "utils.py"), str(docs),
                           json.dumps(answers)], capture_output=True, text=True, check=True, env={**__import__("os").environ, **lmeval.OFFLINE})
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    items = load_bbq(str(docs))
    pairs = [(item, {"metrics": {"acc": float(item.extra["sets"][0]["labels"][a] == 1)}, "answers": [a]}) for item, a in zip(items, answers)]
    ours = bbq_aggregate(pairs, 10, 0)
    for metric in ("accuracy_amb", "accuracy_disamb", "amb_bias_score", "disamb_bias_score"):
        assert ours[metric].value == pytest.approx(theirs[metric], abs=1e-9)
    assert theirs["disamb_bias_score"] != 0 and theirs["amb_bias_score"] != 0  # the scores are exercised, not the 0 rule
    for category in ("Age", "Gender_identity"):
        mine = bbq_aggregate([p for p in pairs if p[0].extra["categories"] == [category]], 10, 0)
        for metric in ("amb_bias_score", "disamb_bias_score"):
            assert mine[metric].value == pytest.approx(theirs[f"{metric}_{category}"], abs=1e-9)
