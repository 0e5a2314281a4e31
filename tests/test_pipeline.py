"""The whole path a user takes, on the tiny model: generate -> export -> train -> reload -> generate.

Exports from each generator must load with `datasets` and train with the matching method.
"""

import json
import subprocess
import sys

from datasets import load_dataset


def selfalign(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "selfalign.cli.main", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"selfalign {args}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_critique_revise_exports_train_sft_and_dpo_and_the_checkpoint_serves_again(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"How should I handle problem {i}?"}) + "\n" for i in range(4)))
    run = tmp_path / "run"
    selfalign("critique-revise", "--model", f"hf:{tiny_model_dir}", "--prompts", prompts, "--out", run,
              "--max-tokens", 16, "--quiet")
    selfalign("export", run, "--format", "sft", "--to", tmp_path / "sft.jsonl")
    selfalign("export", run, "--format", "preference", "--to", tmp_path / "prefs.parquet")
    assert len(load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train")) == 4
    prefs = load_dataset("parquet", data_files=str(tmp_path / "prefs.parquet"), split="train")
    assert len(prefs) >= 1 and prefs.column_names == ["prompt", "chosen", "rejected"]

    common = ["--max-steps", 2, "--batch-size", 2, "--max-length", 256, "--no-bf16"]
    selfalign("train", "--method", "sft", "--model", tiny_model_dir, "--data", tmp_path / "sft.jsonl",
              "--out", tmp_path / "ckpt-sft", *common)
    selfalign("train", "--method", "dpo", "--model", tmp_path / "ckpt-sft", "--data", tmp_path / "prefs.parquet",
              "--out", tmp_path / "ckpt-dpo", *common)
    summary = json.loads((tmp_path / "ckpt-dpo" / "train_summary.json").read_text())
    assert summary["method"] == "dpo" and summary["steps"] == 2

    # the trained checkpoint is a model spec like any other
    out = selfalign("critique-revise", "--model", f"hf:{tmp_path / 'ckpt-dpo'}", "--prompts", prompts,
                    "--out", tmp_path / "run2", "--max-tokens", 8, "--quiet", "--limit", 2)
    assert "2 done, 0 failed" in out


def test_sandbox_groups_train_stable(tmp_path):
    rules = tmp_path / "rules.jsonl"
    lines = [
        {"match": "impartial observer", "replies": [{"alignment": 6, "engagement": 5, "reason": "kind"},
                                                    {"alignment": 3, "engagement": 4, "reason": "curt"}]},
        {"match": "Neighbour's answer", "replies": [{"rating": 5, "reason": "fair"}, {"rating": 2, "reason": "rude"}]},
        {"match": "Revise your answer", "replies": ["A gentler answer.", "A more careful answer."]},
        {"match": "", "replies": ["A first answer.", "Another first answer."]},
    ]
    rules.write_text("".join(json.dumps(line) + "\n" for line in lines))
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in ["Is lying ever fine?", "Should I help?"]))
    out = tmp_path / "sandbox"
    selfalign("sandbox", "--model", f"scripted:{rules}", "--questions", questions, "--grid", 3, "--rounds", 1,
              "--radius", 2, "--raters", 4, "--out", out, "--quiet", "--mix", "all")
    groups = out / "data" / "groups.jsonl"
    rows = [json.loads(line) for line in groups.read_text().splitlines()]
    assert rows and all(1 <= r <= 7 for row in rows for r in row["ratings"])

    from selfalign.llm.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    selfalign("train", "--method", "stable", "--model", model, "--data", groups, "--out", tmp_path / "ckpt",
              "--max-steps", 2, "--batch-size", 4, "--max-length", 256, "--no-bf16")
    assert json.loads((tmp_path / "ckpt" / "train_summary.json").read_text())["method"] == "stable"
