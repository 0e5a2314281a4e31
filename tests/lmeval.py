"""Driving lm-evaluation-harness (installed in its own venv by `make test-lm-eval`) on local
files, for the parity tests and benchmarks/lm_eval_speed.py.

lm-eval takes a local dataset through a task file of our own that includes its shipped task
by absolute path and replaces only where the data comes from (`dataset_path: json`), so the
prompt, choices and metrics are lm-eval's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LM_EVAL_VENV = Path(os.environ.get("LM_EVAL_VENV", REPO / ".venv-lmeval")).absolute()
LM_EVAL_PYTHON = LM_EVAL_VENV / "bin" / "python"
# No hub at run time: lm-eval and datasets read only the local files.
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DISABLE_MULTIPROC": "1"}


def available() -> bool:
    return LM_EVAL_PYTHON.exists()


def tasks_dir() -> Path:
    out = subprocess.run(
        [str(LM_EVAL_PYTHON), "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip()) / "tasks"


def write_tasks(folder: Path, truthfulqa: Path | None = None, hhh: Path | None = None) -> list[str]:
    """Task files reading our local files: local_truthfulqa_mc1/mc2 (lm-eval's truthfulqa tasks)
    and local_hhh (its BIG-bench hhh_alignment multiple-choice task, on BIG-bench hub-format
    rows). Returns the task names."""
    shipped = tasks_dir()
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    if truthfulqa is not None:
        for k in ("mc1", "mc2"):
            _task(folder, f"local_truthfulqa_{k}", shipped / "truthfulqa" / f"truthfulqa_{k}.yaml", truthfulqa, "validation")
            names.append(f"local_truthfulqa_{k}")
    if hhh is not None:
        _task(folder, "local_hhh", shipped / "bigbench" / "multiple_choice" / "hhh_alignment.yaml", hhh, "default")
        names.append("local_hhh")
    return names


def _task(folder: Path, name: str, include: Path, data: Path, split: str) -> None:
    kind = "csv" if data.suffix == ".csv" else "json"
    (folder / f"{name}.yaml").write_text(
        f"include: {include}\ntask: {name}\ntag: []\ndataset_path: {kind}\ndataset_name: null\ntraining_split: null\n"
        f"dataset_kwargs:\n  data_files:\n    {split}: {data}\n"
    )


def write_bias_tasks(folder: Path, files: dict[str, Path]) -> list[str]:
    """Task files reading our local files with lm-eval's own tasks: {"local_" + task: file} for
    crows_pairs_english(_CATEGORY), crows_pairs_french, bbq, ethics_cm, ethics_deontology,
    ethics_justice, ethics_utilitarianism, ethics_virtue and toxigen. Returns the task names."""
    shipped = tasks_dir()
    folder.mkdir(parents=True, exist_ok=True)
    where = {"crows_pairs": ("crows_pairs", "test"), "bbq": ("bbq", "test"), "ethics": ("hendrycks_ethics", "test"),
             "toxigen": ("toxigen", "test")}
    yaml_of = {"bbq": "bbq_multiple_choice", "ethics_cm": "commonsense", "ethics_deontology": "deontology",
               "ethics_justice": "justice", "ethics_utilitarianism": "utilitarianism", "ethics_virtue": "virtue"}
    for task, data in files.items():
        family = next(k for k in where if task.startswith(k))
        subdir, split = where[family]
        _task(folder, f"local_{task}", shipped / subdir / f"{yaml_of.get(task, task)}.yaml", data, split)
    return [f"local_{task}" for task in files]


def run(model_args: str, tasks: list[str], include: Path, out: Path, *, model: str = "hf", batch_size: str = "1",
        extra: list[str] = (), timeout: float = 1800) -> float:
    """Run lm_eval with --log_samples; returns its wall time in seconds."""
    command = [
        str(LM_EVAL_VENV / "bin" / "lm_eval"), "--model", model, "--model_args", model_args,
        "--tasks", ",".join(tasks), "--include_path", str(include), "--batch_size", batch_size,
        "--output_path", str(out), "--log_samples", *extra,
    ]
    if model == "hf":
        command += ["--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **OFFLINE})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"lm_eval failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return elapsed


def results(out: Path) -> dict[str, dict[str, float]]:
    """{task: {"acc": ..., "acc_stderr": ...}} from lm-eval's results file."""
    (path,) = out.rglob("results_*.json")
    data = json.loads(path.read_text())["results"]
    return {task: {"acc": r["acc,none"], "acc_stderr": r["acc_stderr,none"]} for task, r in data.items()}


def metrics(out: Path) -> dict[str, dict[str, Any]]:
    """{task: {metric: value}} from lm-eval's results file, the ",none" filter suffix dropped."""
    (path,) = out.rglob("results_*.json")
    data = json.loads(path.read_text())["results"]
    return {task: {k.removesuffix(",none"): v for k, v in r.items()} for task, r in data.items()}


def samples(out: Path, task: str) -> list[dict[str, Any]]:
    """lm-eval's logged samples of a task, by doc_id: each choice's (loglikelihood, is_greedy)."""
    (path,) = out.rglob(f"samples_{task}_[0-9]*.jsonl")  # the date follows the name
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["doc_id"])


def loglikelihoods(sample: dict[str, Any]) -> list[float]:
    return [float(resp[0][0]) for resp in sample["resps"]]


def hhh_as_hub_rows(items: list[Any], path: Path) -> Path:
    """Our HHH items written as BIG-bench hub rows (the format lm-eval's task reads)."""
    with path.open("w") as f:
        for item in items:
            (s,) = item.extra["sets"]
            gold = s["choices"][s["labels"].index(1)]
            row = {"inputs": item.extra["context"], "targets": [gold], "multiple_choice_targets": s["choices"],
                   "multiple_choice_scores": s["labels"], "subset": item.extra["categories"][0]}
            f.write(json.dumps(row) + "\n")
    return path
