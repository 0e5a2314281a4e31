"""Stage 1, self-instruct: filters with planted texts, counts by reason, determinism, resume."""

from __future__ import annotations

import json

from .conftest import read_jsonl, write_rules

from selfalign.methods.principles.filters import InstructionPool, balance, numbered_lines, topic_problem
from selfalign.methods.principles.selfinstruct import SelfInstruct
from selfalign.methods.principles.config import SelfInstructConfig
from selfalign.methods.principles.files import RedTeamType
from selfalign.methods.principles.calls import PROMPTS_DIR
from selfalign.methods.prompts import Prompts

SEEDS = ["Write a poem about the sea at night.", "Explain how a rainbow forms in the sky."]


def test_each_instruction_filter_by_its_reason():
    pool = InstructionPool(SEEDS)
    offered = {
        "Name three birds.": "fewer than 4 words",
        " ".join(["word"] * 151): "more than 150 words",
        "Draw the layout of a small kitchen.": "asks for what a text model cannot do",
        "Describe this image of a dog.": "asks for what a text model cannot do",
        "Give me directions to go to the station.": "asks for what a text model cannot do",
        "Summarise the mapping of genes on chromosomes.": None,  # "map" only as a whole word
        "- Explain why the sky is blue.": "starts with punctuation or a non-ASCII character",
        "Éxplain why leaves turn red in autumn.": "starts with punctuation or a non-ASCII character",
        "write a poem about the sea, at night!": "duplicate",
        "Write a poem about the sea at midnight.": "ROUGE-L above 0.7 against the pool",
        "Plan a birthday party for a seven-year-old.": None,
        "Plan a birthday party for an eight-year-old.": "ROUGE-L above 0.7 against the pool",  # against the one just kept
    }
    assert {text: pool.offer(text) for text in offered} == offered


def test_numbered_lists_and_topics():
    assert numbered_lines(" Tokyo Tower\n2. Big Ben\n\nnoise\n3) Nile River\n4.", first=1) == [
        (1, "Tokyo Tower"), (2, "Big Ben"), (3, "Nile River")]
    assert numbered_lines("7. a\n8. b", first=7) == [(7, "a"), (8, "b")]
    assert numbered_lines("Sure:\n- Big Ben\n* Nile River", bullets=True) == [(1, "Sure:"), (2, "Big Ben"), (3, "Nile River")]
    assert numbered_lines("- Big Ben") == [(1, "- Big Ben")]  # hints are numbered: no bullets there
    assert numbered_lines("Sure, here they are:\n- Big Ben\n3. Nile", first=None, bullets=True) == [(1, "Big Ben"), (3, "Nile")]
    assert topic_problem("Great Barrier Reef") is None
    assert topic_problem("The Great Barrier Reef Today") == "topic longer than 3 words"
    assert topic_problem("coral reefs") == "topic not a capitalised noun phrase"
    assert balance({0: ["A", "B", "C"], 1: ["D"]}) == ({0: ["A"], 1: ["D"]}, 2)


class _State:
    def __init__(self):
        self.summaries = {}

    def state_items(self, ns):
        return sorted(self.summaries.items())


def plan(config, state=None):
    types = [RedTeamType(name="legal expertise", description="questions that require legal expertise", seeds=["Q1?"]),
             RedTeamType(name="real-time information", description="questions that require real-time information",
                         seeds=["Q2?"])]
    return SelfInstruct(state or _State(), None, config, types, SEEDS, Prompts(PROMPTS_DIR), raw=True)


def test_round_ends_count_every_dropped_text_by_reason():
    state = _State()
    p = plan(SelfInstructConfig(per_type=2, self_instruct=3, topic_calls=1), state)
    topics = [
        {"kind": "topics", "type": 0, "call": 0, "text": "Tenant Law\n2. Traffic Fines\n3. TENANT LAW\n4. Patent Law Courts Today"},
        {"kind": "topics", "type": 1, "call": 0, "text": "Stock Prices\n2. Weather Radar\n3. Train Delays"},
        {"kind": "self-instruct", "call": 0, "first": 5,
         "text": "Write a letter to my landlord about the broken heating.\n6. Draw a cat.\n7. Write a poem about the sea at night."},
    ]
    summary = p.end_round(1, topics, [])
    assert summary["topics"] == {"0": ["Tenant Law", "Traffic Fines"], "1": ["Stock Prices", "Weather Radar"]}
    assert summary["instructions"] == ["Write a letter to my landlord about the broken heating."]
    assert summary["dropped"] == {
        "red-team: topic duplicate": 1, "red-team: topic longer than 3 words": 1,
        "red-team: topic cut to balance the types": 1,
        "self-instruct: fewer than 4 words": 1, "self-instruct: duplicate": 1,
    }
    state.summaries["r001"] = summary
    items = p.items(2)
    questions = [i for i in items if i.extra["kind"] == "questions"]
    assert [q.extra["hints"] for q in questions] == [["Tenant Law", "Traffic Fines"], ["Stock Prices", "Weather Radar"]]
    assert "1. Tenant Law" in questions[0].prompt and "legal expertise" in questions[0].prompt
    records = [
        {**questions[0].extra, "text": "Can my landlord raise the rent twice a year?\n2. Do I have to pay a fine from abroad?\n3. Extra?"},
        {**questions[1].extra, "text": "What is the price of gold today?\n2. Can my landlord raise the rent twice a year?"},
        {"kind": "self-instruct", "call": 0, "first": 5,
         "text": "Suggest a weekend trip near the mountains for a family.\n6. Plan a quiz night with ten questions about space."},
    ]
    summary2 = p.end_round(2, records, [])
    assert [(q["type"], q["topic"]) for q in summary2["questions"]] == [
        ("legal expertise", "Tenant Law"), ("legal expertise", "Traffic Fines"), ("real-time information", "Stock Prices")]
    assert summary2["instructions"] == ["Suggest a weekend trip near the mountains for a family.",
                                        "Plan a quiz night with ten questions about space."]
    assert summary2["dropped"] == {"red-team: question does not answer a hint": 1, "red-team: question duplicate": 1}
    state.summaries["r002"] = summary2
    assert p.items(3) == []  # three instructions kept: nothing left to do
    rows = p.prompts_rows()
    assert [r["source"] for r in rows] == ["red-team"] * 3 + ["self-instruct"] * 3


def rules(tmp_path):
    return write_rules(tmp_path / "rules.jsonl", [
        {"match": "Topics:", "replies": ["Here you go:\n1. Tenant Law\n2. Traffic Fines\n3. Ocean Tides", "1. Stock Prices\n2. Solar Power"]},
        {"match": "one per hint", "replies": ["1. Is this a question about the first hint?\n2. And one about the second hint?"]},
        {"match": "Continue the list", "replies": [
            "7. Write a bedtime story about a shy dragon.\n8. Explain how a bicycle gear system works.",
            "Sure! 7. List five habits that help people sleep better.\n- Describe the taste of a ripe mango to a friend.",
            "1. Compare renting and buying a home for a young couple."]},
    ])


def test_cli_writes_prompts_any_generator_reads_and_is_deterministic(tmp_path, cli):
    model = rules(tmp_path)
    args = ["--model", model, "--per-type", "2", "--self-instruct", "4", "--quiet"]
    code, out = cli("self-instruct", *args, "--out", tmp_path / "a")
    assert code == 0, out
    assert "dropped:" in out and "red-team: question duplicate" in out
    rows = read_jsonl(tmp_path / "a" / "prompts.jsonl")
    assert sum(r["source"] == "self-instruct" for r in rows) == 4
    assert all(r["type"] and r["topic"] for r in rows if r["source"] == "red-team")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["prompts"] == len(rows) and summary["dropped"]
    code, _ = cli("self-instruct", *args, "--out", tmp_path / "b")
    assert (tmp_path / "b" / "prompts.jsonl").read_text() == (tmp_path / "a" / "prompts.jsonl").read_text()
    code, out = cli("self-instruct", *args, "--out", tmp_path / "a")  # resume: everything finished earlier
    assert code == 0 and "finished earlier" in out
    assert (tmp_path / "a" / "prompts.jsonl").read_text() == (tmp_path / "b" / "prompts.jsonl").read_text()
    from selfalign.store import load_items

    assert len(load_items(tmp_path / "a" / "prompts.jsonl")) == len(rows)


def test_bad_data_files_stop_before_any_call_naming_file_line_and_fix(tmp_path, cli):
    model = rules(tmp_path)
    types = tmp_path / "types.jsonl"
    types.write_text(json.dumps({"name": "a", "description": "questions that require a", "seeds": ["q?"]}) + "\n"
                     + json.dumps({"name": "b", "description": "questions that require b", "seeds": []}) + "\n")
    code, out = cli("self-instruct", "--model", model, "--out", tmp_path / "r", "--red-team-types", types)
    assert code == 2 and f"{types}:2" in out and "seeds" in out and '"seeds": ["a question"' in out
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "ok one here"}\n{"instruction": "broken\n')
    code, out = cli("self-instruct", "--model", model, "--out", tmp_path / "r", "--seeds", seeds)
    assert code == 2 and f"{seeds}:2" in out and "broken JSON" in out
    public = tmp_path / "public.jsonl"
    public.write_text(json.dumps({"id": "seed_task_0", "name": "breakfast", "instruction": "Suggest a healthy breakfast.",
                                  "instances": [{"input": "", "output": "Oatmeal."}], "is_classification": False}) + "\n")
    code, out = cli("self-instruct", "--model", model, "--out", tmp_path / "p", "--seeds", public,
                    "--per-type", "0", "--self-instruct", "2", "--quiet")
    assert code == 0, out
    assert not (tmp_path / "r" / "run.sqlite").exists()  # stopped before the run began
