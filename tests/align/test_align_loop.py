"""benchmarks/align_loop.py: its pure parts quickly, and the whole loop (save-model aside) on the
tiny model with a few items per stage: mechanics only, the tiny model's text is meaningless."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "align_loop.py"


def _loop():
    spec = importlib.util.spec_from_file_location("align_loop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_prompts_interleave_red_team_and_lookalikes_with_their_labels(tmp_path):
    path = _loop().training_prompts(tmp_path, 3, 1, "r3-l1")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["red_team"] for r in rows] == [True, False, True, True]
    assert rows[0]["category"] == rows[1]["category"]  # a look-alike follows its red-team request


def test_figures_read_base_tuned_and_the_paired_difference():
    def fig(model, bench, metric, kind, value, ci, category=None):
        return {"model": model, "bench": bench, "metric": metric, "kind": kind, "value": value, "ci": ci, "n": 4, "category": category}

    results = {"figures": [
        fig("hf:base", "prompts", "refusal_rate", "mean", 0.25, [0, 0.75]),
        fig("hf:tuned", "prompts", "refusal_rate", "mean", 0.75, [0.25, 1]),
        fig("hf:tuned", "prompts", "refusal_rate", "difference", 0.5, [0.25, 0.75]),
        fig("hf:tuned", "hhh", "acc", "mean", 0.5, [0, 1], category="harmless"),  # per subset: not the overall figure
        fig("hf:tuned", "hhh", "acc", "mean", 0.6, [0.2, 1]),
    ]}
    figures = _loop().figures(results, "hf:tuned")
    assert figures["refusal_harmful"] == {"base": 0.25, "base_ci": [0, 0.75], "tuned": 0.75, "tuned_ci": [0.25, 1],
                                          "diff": 0.5, "diff_ci": [0.25, 0.75], "n": 4}
    assert figures["preference_accuracy"] == {"tuned": 0.6, "tuned_ci": [0.2, 1]}


@pytest.mark.slow
def test_the_loop_runs_generate_train_evaluate_and_tabulates(tiny_model_dir, tmp_path):
    out = tmp_path / "align"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--method", "critique", "--base", str(tiny_model_dir), "--out", str(out),
         "--red-team", "2", "--lookalikes", "2", "--max-tokens", "8", "--epochs", "1", "--max-length", "64",
         "--eval-max-tokens", "4", "--eval-limit", "4"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entry = json.loads((out / "align.json").read_text())
    assert entry["method"] == "critique" and entry["rows"] == 4 and entry["items"] == {"done": 4, "failed": 0}
    assert set(entry["seconds"]) == {"generate", "export", "train", "eval"}
    for name in ("refusal_harmful", "over_refusal_lookalike", "preference_accuracy"):
        assert {"base", "tuned", "diff", "diff_ci"} <= set(entry["figures"][name]), name
    assert "| critique | 4 | 4/4 | refusal_harmful |" in proc.stdout
