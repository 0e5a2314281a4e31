"""`selfalign train` from the command line: flags, YAML config, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM

from selfalign.cli.main import main

from train_fixtures import write_jsonl


def test_cli_trains_end_to_end_with_config_and_flag_overrides(tiny_lm, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    config = tmp_path / "train.yaml"
    config.write_text(
        f"method: stable\nmodel: {tiny_lm}\ndata: {data_dir / 'sandbox.jsonl'}\nout: {out}\n"
        "max-steps: 5\nbatch_size: 3\nlr: 0.001\nwarmup_ratio: 0.0\nratio: 0.5\nlogging_steps: 1\n"
    )
    rc = main(["train", "--config", str(config), "--max-steps", "2", "--save-steps", "1", "--no-bf16"])
    assert rc == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["method"] == "stable" and summary["steps"] == 2  # the flag beat the file
    captured = capsys.readouterr()
    assert f"checkpoint: {out}  (load it with hf:{out}" in captured.out and "trained 2 steps" in captured.out
    assert "2/2" in captured.err and "loss=" in captured.err  # the progress bar: steps and loss
    assert "{'loss'" not in captured.out + captured.err  # and no log printed as a dict per step
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None
    saved = (out / "train_config.yaml").read_text()
    assert "ratio: 0.5" in saved and "max_steps: 2" in saved
    from selfalign.report import read_run  # the whole log, for the report's curves

    run = read_run(out)
    assert run["view"]["state_file"] == str(out / "trainer_state.json") and run["overview"]["finished"]
    assert [e["step"] for e in run["view"]["log"]] == [1, 2]


def test_cli_bad_rating_exits_2_naming_the_line(tiny_lm, tmp_path, capsys):
    data = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "q", "responses": ["a", "b"], "ratings": [7, 2]},
        {"query": "q", "responses": ["a", "b"], "scores": [8, 2]},
    ])
    rc = main(["train", "--method", "stable", "--model", str(tiny_lm), "--data", str(data), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{data}:2" in err and "outside [1, 7]" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # stopped before anything was written


def test_cli_bad_options(tiny_lm, data_dir, tmp_path, capsys):
    rc = main(["train", "--method", "sft", "--data", str(data_dir / "sft.jsonl"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "model: Field required" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: sft\nlearning_rate: 1\n")
    rc = main(["train", "--config", str(cfg)])
    assert rc == 2 and "learning_rate: Extra inputs are not permitted" in capsys.readouterr().err
    rc = main(["train", "--method", "sft", "--model", str(tmp_path / "nope"), "--data", str(data_dir / "sft.jsonl"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "cannot load a tokenizer" in capsys.readouterr().err


def test_shipped_accelerate_configs(capsys):
    import yaml

    for name, kind in [("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp", "FSDP")]:
        assert main(["train", "--accelerate-config", name]) == 0
        path = Path(capsys.readouterr().out.strip())
        assert yaml.safe_load(path.read_text())["distributed_type"] == kind


def test_python_dash_m_entry_point():
    # `accelerate launch -m selfalign.cli.main train ...` relies on this
    proc = subprocess.run([sys.executable, "-m", "selfalign.cli.main", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--method" in proc.stdout and "--lora-target-modules" in proc.stdout


def test_the_original_sandbox_release_file_trains_with_stable(tiny_lm, tmp_path):
    """sandbox_v1.json is one JSON array of {"query", "responses", "scores"}, as released."""
    release = [{"query": f"Question {i}?", "responses": ["A careful answer.", "A rude answer.", "Meh."],
                "scores": [7, 1, 4]} for i in range(4)]
    data = tmp_path / "sandbox_v1.json"
    data.write_text(json.dumps(release, indent=1))
    out = tmp_path / "out"
    rc = main(["train", "--method", "stable", "--model", str(tiny_lm), "--data", str(data), "--out", str(out),
               "--max-steps", "1", "--batch-size", "2", "--no-bf16", "--data", f"{data}:0.5"])  # weighted, repeatable
    summary = json.loads((out / "train_summary.json").read_text())
    assert rc == 0 and summary["method"] == "stable"
