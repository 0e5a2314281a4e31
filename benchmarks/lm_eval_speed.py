"""TruthfulQA MC1/MC2 scoring time: `selfalign eval` against lm-evaluation-harness's `hf` model,
on the same model and questions, in one run, with the figures checked equal.

    make .venv-lmeval/.installed      # lm-evaluation-harness in its own venv (see the Makefile)
    python benchmarks/lm_eval_speed.py                          # the tiny model, 100 questions
    python benchmarks/lm_eval_speed.py --model DIR --questions 200 --lm-eval-batch-sizes 1,8,32

The questions are written here (TruthfulQA's public row format, 2-5 MC1 and 3-8 MC2 choices
of a few words to a sentence each, after lm-eval's six-question primer), so no hub is needed.
Each way scores every question once with the model already loaded: ours is `run_eval` on a
fresh folder (its run store included), lm-eval's is `simple_evaluate` on an `HFLM` built
beforehand, in its own venv, at each batch size given (lm-eval's default is 1).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import lmeval  # noqa: E402  (tests/lmeval.py: lm-eval's venv and task files)

from selfalign.evaluate import EvalConfig, build_results, run_eval  # noqa: E402

SUBJECTS = ["the moon", "goldfish", "coffee", "lightning", "the Great Wall", "vitamin C", "bats", "sugar", "mirrors", "cats"]
CLAIMS = [
    "is made of cheese", "can be seen from space", "cures colds", "never strikes twice", "is blind",
    "makes children hyperactive", "brings bad luck when broken", "always lands on its feet", "has a three-second memory",
]


def write_questions(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            subject = rng.choice(SUBJECTS)
            claims = rng.sample(CLAIMS, 6)
            question = f"Is it true that {subject} {claims[0]}?" + (" Explain briefly." if i % 3 == 0 else "")
            true = [f"No, that is a myth about {subject}.", "No.", f"There is no evidence that {subject} {claims[0]}."]
            false = [f"Yes, {subject} {c}." for c in claims[: rng.randint(2, 5)]]
            mc1 = [true[0], *false[: rng.randint(1, 4)]]
            mc2 = true[: rng.randint(1, 3)] + false
            row = {"question": question, "mc1_targets": {"choices": mc1, "labels": [1] + [0] * (len(mc1) - 1)},
                   "mc2_targets": {"choices": mc2, "labels": [int(c in true) for c in mc2]}}
            f.write(json.dumps(row) + "\n")
    return path


LM_EVAL_DRIVER = """
import json, sys, time
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
model, tasks_dir, batch_size = sys.argv[1], sys.argv[2], sys.argv[3]
lm = HFLM(pretrained=model, dtype="float32", device="cpu", batch_size=int(batch_size))
manager = TaskManager(include_path=tasks_dir)
start = time.perf_counter()
out = simple_evaluate(model=lm, tasks=["local_truthfulqa_mc1", "local_truthfulqa_mc2"], task_manager=manager)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "mc1": out["results"]["local_truthfulqa_mc1"]["acc,none"],
                  "mc2": out["results"]["local_truthfulqa_mc2"]["acc,none"]}))
"""


def time_lm_eval(model: str, tasks_dir: Path, batch_size: str) -> dict:
    env = {**__import__("os").environ, **lmeval.OFFLINE}
    proc = subprocess.run([str(lmeval.LM_EVAL_PYTHON), "-c", LM_EVAL_DRIVER, model, str(tasks_dir), batch_size],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_ours(model: str, questions: Path, out: Path) -> dict:
    config = EvalConfig(models=[f"hf:{model}"], benches=["truthfulqa_mc"], data={"truthfulqa_mc": str(questions)},
                        out=str(out), device="cpu", progress=False, resamples=1000)
    start = time.perf_counter()
    results = build_results(run_eval(config))
    elapsed = time.perf_counter() - start
    value = {f["metric"]: f["value"] for f in results["figures"] if f["category"] is None}
    return {"seconds": elapsed, **value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a Hugging Face folder (default: selfalign tiny-model, built here)")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--lm-eval-batch-sizes", default="1,32")
    args = parser.parse_args()
    if not lmeval.available():
        sys.exit(f"lm-evaluation-harness is not installed in {lmeval.LM_EVAL_VENV}: run make .venv-lmeval/.installed")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = args.model
        if model is None:
            from selfalign.llm.tiny import build_tiny_model

            model = str(build_tiny_model(tmp_path / "tiny"))
        questions = write_questions(tmp_path / "truthfulqa_mc.jsonl", args.questions)
        lmeval.write_tasks(tmp_path / "tasks", truthfulqa=questions)
        ours = time_ours(model, questions, tmp_path / "ours")
        print(f"{args.questions} questions on {model}")
        print(f"selfalign eval: {ours['seconds']:.1f} s (mc1 {ours['mc1']:.4f}, mc2 {ours['mc2']:.4f})")
        for batch_size in args.lm_eval_batch_sizes.split(","):
            theirs = time_lm_eval(model, tmp_path / "tasks", batch_size)
            same = abs(theirs["mc1"] - ours["mc1"]) < 1e-4 and abs(theirs["mc2"] - ours["mc2"]) < 1e-4
            print(f"lm-eval hf, batch size {batch_size}: {theirs['seconds']:.1f} s (mc1 {theirs['mc1']:.4f}, "
                  f"mc2 {theirs['mc2']:.4f}; {'same figures' if same else 'FIGURES DIFFER'}): "
                  f"selfalign is {theirs['seconds'] / ours['seconds']:.2f}x as fast")


if __name__ == "__main__":
    main()
