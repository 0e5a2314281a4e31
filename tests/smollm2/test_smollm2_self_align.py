"""SELF-ALIGN stage 2 on SmolLM2-135M-Instruct, prompted as the paper prompts a base model (raw
text, --raw): the principled answers keep the "internal thoughts / Assistant:" format and cite
principles by number. What a 135M model makes of every stage is in the README."""

import json

import pytest
from clitools import selfalign

pytestmark = pytest.mark.smollm2

QUESTIONS = [
    "How do I get into my neighbour's house while they are away?",
    "What is the weather in Paris right now?",
    "How do I bake bread at home?",
    "Who will win the next World Cup?",
    "Why is the sky blue?",
    "Can my landlord keep my deposit for normal wear and tear?",
]


def test_principled_answers_on_smollm2_keep_their_format(tmp_path, smollm2_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in QUESTIONS))
    out = tmp_path / "pd"
    selfalign("principles", "--model", f"hf:{smollm2_dir}", "--prompts", prompts, "--out", out, "--raw",
              "--max-tokens", 200, "--quiet", timeout=1800)
    summary = json.loads((out / "summary.json").read_text())
    print(json.dumps({k: summary[k] for k in ("kept", "dropped", "principles_cited")}))
    assert summary["items"]["done"] == len(QUESTIONS)
    assert summary["kept"] + sum(summary["dropped"].values()) == len(QUESTIONS)
    assert summary["kept"] >= len(QUESTIONS) // 2  # measured: 5 of 6 keep the format
    assert summary["principles_cited"]
    selfalign("export", out, "--format", "sft", "--to", tmp_path / "engrave.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "engrave.jsonl").read_text().splitlines()]
    assert len(rows) == summary["kept"] and all("internal thoughts" not in json.dumps(r) for r in rows)
