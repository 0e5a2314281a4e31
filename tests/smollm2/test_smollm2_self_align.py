"""SELF-ALIGN on SmolLM2-135M-Instruct: stage 1 keeps red-teaming questions, stage 2 keeps
principled answers that cite principles, and `self-align` runs every stage end to end keeping
data at each (small counts; what a 135M model makes of them is in docs/self_align.md)."""

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


def three_types(path):
    """Three of the shipped red-team types: a stage 1 that ends in minutes on a CPU."""
    from selfalign.methods.principles import load_red_team_types

    kinds = [k for k in load_red_team_types(None) if k.name in ("legal expertise", "real-time information",
                                                                    "scientific knowledge")]
    path.write_text("".join(json.dumps(k.model_dump()) + "\n" for k in kinds))
    return path


def test_self_instruct_on_smollm2_keeps_red_teaming_questions(tmp_path, smollm2_dir):
    out = tmp_path / "si"
    proc = selfalign("self-instruct", "--model", f"hf:{smollm2_dir}", "--out", out, "--raw", "--per-type", 2,
                     "--self-instruct", 2, "--max-rounds", 2, "--max-tokens", 256, "--quiet",
                     "--red-team-types", three_types(tmp_path / "types.jsonl"), timeout=3600)
    summary = json.loads((out / "summary.json").read_text())
    print(proc.stdout[-3000:])
    assert summary["red_team"]["questions"] >= 1
    assert summary["dropped"]  # every drop counted by reason


def test_principled_answers_on_smollm2_keep_their_format(tmp_path, smollm2_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in QUESTIONS))
    out = tmp_path / "pd"
    proc = selfalign("principles", "--model", f"hf:{smollm2_dir}", "--prompts", prompts, "--out", out, "--raw",
                     "--max-tokens", 200, "--ngram-penalties", "3:4,4:8", "--quiet", timeout=1800, check=False)
    summary = json.loads((out / "summary.json").read_text())
    # measured: without the n-gram penalties SmolLM2 answers with its thoughts again (5 of 6) and
    # keeps none; with them it keeps 2 of 6 (docs/self_align.md)
    print(json.dumps({k: summary[k] for k in ("kept", "dropped", "principles_cited")}))
    assert proc.returncode == 0 and summary["kept"] >= 1, proc.stdout + proc.stderr
    assert summary["items"]["done"] == len(QUESTIONS)
    assert summary["kept"] + sum(summary["dropped"].values()) == len(QUESTIONS)
    assert summary["principles_cited"]  # the thoughts name rules (measured: raw text keeps 1 to 5 in 10 answers)
    selfalign("export", out, "--format", "sft", "--to", tmp_path / "engrave.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "engrave.jsonl").read_text().splitlines()]
    assert len(rows) == summary["kept"] and all("internal thoughts" not in json.dumps(r) for r in rows)
    assert all(r["messages"][0]["role"] == "system" for r in rows)  # the short system prompt engraving keeps


@pytest.mark.slow  # every stage, two trainings included: about 15 minutes on 2 cores
def test_self_align_on_smollm2_keeps_data_at_every_stage(tmp_path, smollm2_dir):
    """Measured (benchmarks/results/self_align_smollm2_ngram.json): with stage 2's n-gram
    penalties every stage keeps data to the final checkpoint (35 prompts, 2 principled answers,
    35 verbose answers); without them stage 2 kept nothing usable."""
    config = tmp_path / "self-align.yaml"
    config.write_text(
        f"raw: true\nper_type: 2\nself_instruct: 30\nred_team_types: {three_types(tmp_path / 'types.jsonl')}\n"
        "self_instruct_max_tokens: 256\nprinciples_max_tokens: 200\nprinciples_ngram_penalties: {3: 4, 4: 8}\n"
        "verbose_max_tokens: 256\n"
        "train: {max_steps: 3, save_steps: 3}\n")
    out = tmp_path / "sa"
    proc = selfalign("self-align", "--base", smollm2_dir, "--out", out, "--config", config, "--cpu", "--quiet",
                     check=False, timeout=7200)
    print(proc.stdout[-4000:])
    finished = json.loads((out / "stages.json").read_text())["finished"]
    assert finished["1-self-instruct"]["red_team"]["questions"] >= 1
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert list(finished) == ["1-self-instruct", "2-principles", "3-engrave", "4-verbose", "5-distill"]
    assert finished["2-principles"]["kept"] >= 1 and finished["4-verbose"]["kept"] >= 1
