"""The whole path a user takes, on the tiny model: generate -> export -> train -> reload -> generate.

Exports from each generator must load with `datasets` and train with the matching method.
"""

import json

from clitools import selfalign
from datasets import load_dataset


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
    proc = selfalign("critique-revise", "--model", f"hf:{tmp_path / 'ckpt-dpo'}", "--prompts", prompts,
                    "--out", tmp_path / "run2", "--max-tokens", 8, "--quiet", "--limit", 2)
    assert "2 done, 0 failed" in proc.stdout
