"""Without the `ray` extra nothing changes, and `--ray` says how to install it."""

import json
import sys

from selfalign.cli.main import main


def test_ray_is_optional_and_its_absence_is_a_clear_error(tmp_path, monkeypatch, capsys):
    rules, prompts = tmp_path / "rules.jsonl", tmp_path / "prompts.jsonl"
    rules.write_text(json.dumps({"match": "", "reply": "An answer."}) + "\n")
    prompts.write_text(json.dumps({"prompt": "Hello?"}) + "\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it fails
    args = ["critique-revise", "--model", f"scripted:{rules}", "--prompts", str(prompts), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0  # no --ray: Ray is never imported
    assert main([*args, "--out", str(tmp_path / "ray"), "--ray", "--actors", "2"]) == 2
    err = capsys.readouterr().err
    assert "'ray' is needed here but not installed" in err and "pip install 'selfalign[ray]'" in err
