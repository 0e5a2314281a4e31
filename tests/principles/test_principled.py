"""Stage 2, principle-driven answers, and stage 4, verbose answers: what is kept, what is
dropped and why, the exports, and clear errors for malformed principles and exemplars."""

from __future__ import annotations

import json

import pytest
from .conftest import read_jsonl, write_rules

from selfalign.methods.principles import load_exemplars, load_principles
from selfalign.methods.principles.filters import is_bare_refusal, prompt_leaked, verbose_problem
from selfalign.methods.principles.principled import judge

PRINCIPLES = load_principles(None)
LEAKS = [phrase for e in load_exemplars(None, PRINCIPLES) for phrase in e.leaks]


def test_shipped_files_hold_16_principles_and_an_explained_decline():
    assert [p.id for p in PRINCIPLES] == list(range(1, 17))
    assert PRINCIPLES[0].name == "ethical" and PRINCIPLES[-1].name == "operational"
    first_turns = [e.turns[0] for e in load_exemplars(None, PRINCIPLES)]
    declines = [t for t in first_turns if "(ethical)" in t.thoughts and t.answer.startswith("I won't")]
    assert declines and not is_bare_refusal(declines[0].answer)  # declines, and says why


@pytest.mark.parametrize("answer, kept", [
    ("I'm sorry, I can't help with that.", False),
    ("Sorry, I cannot do that.", False),
    ("As an AI, I cannot.", False),
    ("I can't help with that, because it would put other people in danger.", True),
    ("I won't explain how to do that: breaking into a car is a crime. A locksmith can help you instead.", True),
    ("Paris is the capital of France.", True),
])
def test_bare_refusals_are_dropped_and_explained_declines_kept(answer, kept):
    assert is_bare_refusal(answer) is not kept


def test_judge_reads_thoughts_cites_by_name_and_drops_by_reason():
    text = " Rules 1 (ethical) and 7 (candor) apply.\n\nAssistant: I can't see live data, so I cannot tell you that.\n\nUser: next"
    record = judge("What is the weather now?", text, "stop", PRINCIPLES, LEAKS)
    assert record.principles == ["ethical", "candor"]
    assert record.answer == "I can't see live data, so I cannot tell you that." and record.dropped is None
    assert judge("q", "no format at all", "stop", PRINCIPLES, LEAKS).dropped == "format lost"
    leaked = " Rule 8 (knowledge recitation).\n\nAssistant: Amelia Earhart flew alone across the Atlantic in 1932."
    assert judge("Who was the first pilot?", leaked, "stop", PRINCIPLES, LEAKS).dropped == "exemplar leakage"
    assert judge("Tell me about Amelia Earhart", leaked, "stop", PRINCIPLES, LEAKS).dropped is None  # asked about it
    assert judge("q", " Rule 1 (ethical).\n\nAssistant: I'm sorry, I can't.", "stop", PRINCIPLES, LEAKS).dropped == "bare refusal"
    assert judge("q", " Rule 3 (helpful).\n\nAssistant: Yes, fine.", "stop", PRINCIPLES, LEAKS).dropped == "too short"
    cut = judge("q", " Rule 2 (informative).\n\nAssistant: It is a long answer that goes on", "length", PRINCIPLES, LEAKS)
    assert cut.dropped == "truncated"
    loop = " Rule 2 (informative).\n\nAssistant: Tides follow the Moon's pull on the oceans. Tides rise twice a day. Tides rise twice a day. Tides"
    looped = judge("Why are there tides?", loop, "length", PRINCIPLES, LEAKS)
    assert looped.dropped is None and looped.answer == "Tides follow the Moon's pull on the oceans. Tides rise twice a day."


def test_verbose_filters():
    persona = "You are a knowledgeable and thorough assistant. Answer the user's request in depth."
    long = "Photosynthesis turns light into chemical energy. " + "Leaves hold chlorophyll, which absorbs red and blue light. " * 2
    assert verbose_problem("Too short.", "stop", persona) == "shorter than 128 characters"
    assert verbose_problem(long, "length", persona) == "truncated"
    assert verbose_problem(long, "stop", persona) == "repetitive"
    leak = "As a knowledgeable and thorough assistant answer the user's request I will explain how plants make food from light, water and air in detail."
    assert prompt_leaked(leak, persona) and verbose_problem(leak, "stop", persona) == "prompt leakage"
    fine = ("Plants make food by photosynthesis. Chlorophyll in their leaves absorbs light, which splits water and "
            "releases oxygen; the energy then turns carbon dioxide into sugars the plant uses to grow.")
    assert verbose_problem(fine, "stop", persona) is None


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in [
        "How do I pick my neighbour's lock?", "Tell me about Paris", "Say sorry to me", "Who flew across the ocean first?",
        "Anything at all"]))
    return path


def test_principles_cli_counts_drops_and_exports_engraving_data(tmp_path, cli, prompts):
    model = write_rules(tmp_path / "rules.jsonl", [
        {"match": "User: How do I pick", "reply": " Rule 1 (ethical) applies.\n\nAssistant: I won't explain how to open a lock that is not yours, because entering someone's home without permission is a crime."},
        {"match": "User: Tell me about Paris", "reply": " Rules 8 (knowledge recitation) and 2 (informative).\n\nAssistant: Paris is the capital of France, on the Seine."},
        {"match": "User: Say sorry", "reply": " Rule 1 (ethical).\n\nAssistant: I'm sorry, I can't do that."},
        {"match": "User: Who flew", "reply": " Rule 8 (knowledge recitation).\n\nAssistant: Amelia Earhart flew it in 1932 from Harbour Grace."},
        {"match": "", "reply": "no format here"},
    ])
    out = tmp_path / "pd"
    code, text = cli("principles", "--model", model, "--prompts", prompts, "--out", out, "--quiet")
    assert code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 2
    assert summary["dropped"] == {"bare refusal": 1, "exemplar leakage": 1, "format lost": 1}
    assert summary["principles_cited"] == {"ethical": 2, "knowledge recitation": 2, "informative": 1}
    assert "principles_cited:" in text and "bare refusal" in text
    code, text = cli("export", out, "--format", "sft", "--to", tmp_path / "engrave.jsonl")
    rows = read_jsonl(tmp_path / "engrave.jsonl")
    assert [r["messages"][-1]["content"][:10] for r in rows] == ["I won't ex", "Paris is t"]
    assert all("Rule" not in json.dumps(r) and "internal thoughts" not in json.dumps(r) for r in rows)  # pruned
    cli("export", out, "--format", "thoughts", "--to", tmp_path / "thoughts.parquet")
    from datasets import load_dataset

    thoughts = load_dataset("parquet", data_files=str(tmp_path / "thoughts.parquet"), split="train")
    assert len(thoughts) == 5 and thoughts[0]["principles"] == ["ethical"]
    assert load_dataset("json", data_files=str(tmp_path / "engrave.jsonl"), split="train").num_rows == 2


def test_raw_prompt_goes_in_as_text_for_models_without_a_chat_template(tmp_path, cli, prompts):
    model = write_rules(tmp_path / "rules.jsonl", [{"match": "internal thoughts\\):$", "reply": " Rule 3 (helpful).\n\nAssistant: A fine and useful answer here."}])
    code, text = cli("principles", "--model", model, "--prompts", prompts, "--out", tmp_path / "raw", "--raw", "--quiet")
    assert code == 0 and "kept: 5" in text


@pytest.mark.parametrize("flag, content, where, says", [
    ("--principles", '{"id": 1, "name": "ethical", "text": "be good"}\n{"id": 1, "name": "again", "text": "x"}\n', 2, "appears again"),
    ("--principles", '{"id": 1, "name": "ethical"}\n', 1, '"text": "what the rule asks"'),
    ("--exemplars", '{"turns": [{"user": "hi", "thoughts": "rule 99 (made up)", "answer": "hello"}]}\n', 1, "cite rule 99"),
    ("--exemplars", '{"turns": [{"user": "hi", "thoughts": "no rule named", "answer": "hello"}]}\n', 1, "cite no rule"),
    ("--exemplars", '{"turns": []}\n', 1, "turns"),
])
def test_malformed_principles_and_exemplars_name_file_line_and_fix(tmp_path, cli, prompts, flag, content, where, says):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code, text = cli("principles", "--model", "scripted:/nonexistent", "--prompts", prompts, "--out", tmp_path / "r", flag, path)
    assert code == 2 and f"{path}:{where}" in text and says in text, text
    assert not (tmp_path / "r").exists()


def test_shipped_training_recipes_follow_the_paper():
    from selfalign.train.config import load_config

    need = {"model": "m", "data": ["d.jsonl"], "out": "o"}
    engrave = load_config("engrave", need)
    assert (engrave.method, engrave.lora, engrave.lora_r, engrave.lr, engrave.epochs, engrave.max_length) == (
        "sft", True, 16, 4e-4, 1.0, 512)
    assert engrave.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert load_config("distill", need).max_length == 768
    cpu = load_config("engrave-cpu", {**need, "max_steps": 3})  # flags still win over the recipe
    assert cpu.max_steps == 3 and cpu.lora_r == 16
