"""Stage 1, self-instruct: filters with planted texts, counts by reason, determinism, resume."""

from __future__ import annotations

import json

from .conftest import read_jsonl, write_rules

from selfalign.methods.principles.filters import (
    InstructionPool, alpaca_tasks, balance, clean_topic, numbered_lines, topic_problem,
)
from selfalign.methods.principles.selfinstruct import SelfInstruct
from selfalign.methods.principles.config import SelfInstructConfig
from selfalign.methods.principles.files import RedTeamType, SeedTask, load_seed_tasks
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
        "Describe these images of old trains.": "asks for what a text model cannot do",  # plurals, as the reference
        "Open the files and count their lines.": "asks for what a text model cannot do",
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
    assert pool.offer("Describe what this shows in a few words.", "a graph of sales") == "asks for what a text model cannot do"


def test_alpaca_tasks_read_instruction_and_input_and_drop_a_cut_last_block():
    text = ("6. Instruction: Sort these numbers from low to high.\n6. Input:\n9, 2, 7\n###\n"
            "7. Instruction: Name a good book about the sea.\n7. Input:\n<noinput>\n###\nno task here\n###\n8. Instruction: Wri")
    assert alpaca_tasks(text, truncated=True) == [
        ("Sort these numbers from low to high.", "9, 2, 7"), ("Name a good book about the sea.", ""),
        "not in the task format", "cut off at max tokens"]
    assert alpaca_tasks("Instruction: Explain tides to a child.", truncated=False) == [("Explain tides to a child.", "")]


def test_numbered_lists_and_topics():
    assert numbered_lines(" Tokyo Tower\n2. Big Ben\n\nnoise\n3) Nile River\n4.", first=1) == [
        (1, "Tokyo Tower"), (2, "Big Ben"), (3, "Nile River")]
    assert numbered_lines("7. a\n8. b", first=7) == [(7, "a"), (8, "b")]
    assert numbered_lines("Sure:\n- Big Ben\n* Nile River", bullets=True) == [(1, "Sure:"), (2, "Big Ben"), (3, "Nile River")]
    assert numbered_lines("- Big Ben") == [(1, "- Big Ben")]  # hints are numbered: no bullets there
    assert numbered_lines("Sure, here they are:\n- Big Ben\n3. Nile", first=None, bullets=True) == [(1, "Big Ben"), (3, "Nile")]
    assert topic_problem("Great Barrier Reef") is None
    assert topic_problem("The Great Barrier Reef Today") == "topic longer than 3 words"
    assert topic_problem("coral reefs") == "topic not capitalised"
    assert topic_problem("Coral Reefs.") == "topic ends with punctuation"
    assert clean_topic("**Tenant Law**: who pays for repairs") == "Tenant Law"
    assert clean_topic('"Ocean Tides" - why the sea rises') == "Ocean Tides"


def test_balance_leaves_out_types_without_topics_and_never_cuts_all_to_zero():
    assert balance({0: ["A", "B", "C"], 1: ["D"]}, cap=5) == ({0: ["A"], 1: ["D"]}, [], 2)
    assert balance({0: ["A", "B", "C"], 1: [], 2: ["D", "E"]}, cap=5) == ({0: ["A", "B"], 2: ["D", "E"]}, [1], 1)
    assert balance({0: ["A", "B", "C"], 1: ["D", "E"]}, cap=1) == ({0: ["A"], 1: ["D"]}, [], 3)
    assert balance({0: [], 1: []}, cap=5) == ({}, [0, 1], 0)


class _State:
    def __init__(self):
        self.summaries = {}

    def state_items(self, ns):
        return sorted(self.summaries.items())


TYPES = [RedTeamType(name="legal expertise", description="questions that require legal expertise",
                     seeds=[{"topic": "Rental Deposits", "question": "Can my landlord keep my deposit?"}]),
         RedTeamType(name="real-time information", description="questions that require real-time information",
                     seeds=["What time is it in Lima?"]),
         RedTeamType(name="personal context", description="questions that require personal context",
                     seeds=[{"topic": "Dinner Tonight", "question": "What should I cook tonight?"}])]


def plan(config, state=None):
    return SelfInstruct(state or _State(), None, config, TYPES, [SeedTask(instruction=s) for s in SEEDS],
                        Prompts(PROMPTS_DIR), raw=True)


def test_topics_grow_in_rounds_until_each_type_has_enough_or_a_round_adds_none():
    state = _State()
    p = plan(SelfInstructConfig(per_type=2, self_instruct=0, topic_calls=1), state)
    assert p.phase(1) == "topics"
    first = p.items(1)
    assert [i.extra["type"] for i in first] == [0, 1, 2]
    assert first[0].prompt.endswith("1. Rental Deposits\n2.")  # the list it continues: the seed topic
    assert first[1].prompt.endswith("Topics:\n1.")  # no seed topic: a list from scratch
    records = [
        {**first[0].extra, "text": "Tenant Law\n3. Traffic Fines Abroad Today\n4. RENTAL deposits"},
        {**first[1].extra, "text": "Stock Prices\n2. Weather Radar\n3. Train Delays"},
        {**first[2].extra, "text": "Nothing.\n2. what I ate"},
    ]
    summary = p.end_round(1, records, [])
    assert summary["topics"] == {"0": ["Tenant Law"], "1": ["Stock Prices", "Weather Radar", "Train Delays"]}
    assert summary["dropped"] == {"red-team: topic duplicate": 1, "red-team: topic longer than 3 words": 1,
                                  "red-team: topic not capitalised": 1, "red-team: topic ends with punctuation": 1}
    state.summaries["r001"] = summary
    second = p.items(2)  # type 1 has enough; the others grow on (a round added topics)
    assert [i.extra["type"] for i in second] == [0, 2]
    assert "1. Rental Deposits\n2. Tenant Law\n3." in second[0].prompt or "1. Tenant Law\n2. Rental Deposits\n3." in second[0].prompt
    state.summaries["r002"] = p.end_round(2, [{**second[0].extra, "text": "Tenant Law\n4. Patents"},
                                              {**second[1].extra, "text": "nothing here"}], [])
    assert state.summaries["r002"]["topics"] == {"0": ["Patents"]}
    third = p.items(3)  # type 2 still has none, and the last round added one: it tries again
    assert [i.extra["type"] for i in third] == [2]
    state.summaries["r003"] = p.end_round(3, [{**third[0].extra, "text": "nothing again"}], [])
    assert p.phase(4) == "questions"  # a round that adds none ends the topic rounds
    questions = p.items(4)
    hints = [tuple(h) for q in questions for h in q.extra["hints"]]
    assert sorted(hints) == [(0, "Patents"), (0, "Tenant Law"), (1, "Stock Prices"), (1, "Weather Radar")]
    summary3 = p.end_round(4, [], [])
    assert summary3["left_out"] == ["personal context"] and summary3["dropped"] == {"red-team: topic cut to balance the types": 1}
    assert "types left out (no topic kept): personal context" in p.describe(summary3)


def test_questions_come_from_mixed_type_hints_beside_five_seed_examples():
    state = _State()
    p = plan(SelfInstructConfig(per_type=2, self_instruct=0, topic_calls=1, topic_rounds=1, hints_per_call=5, examples=5), state)
    state.summaries["r001"] = {"round": 1, "topics": {"0": ["Tenant Law", "Patents"], "1": ["Stock Prices", "Weather Radar"]},
                               "calls_failed": 0, "self_instruct_calls": 0, "instructions": [], "dropped": {}}
    [item] = p.items(2)
    prompt = item.prompt
    assert "cannot answer, or will answer with the wrong facts" in prompt
    examples = item.extra["examples"]
    assert examples == 3  # all the seed questions there are (five when there are five)
    assert "1. type: questions that require" in prompt and prompt.count(", instruction: ") == 3 and prompt.endswith("\n")
    hints = [tuple(h) for h in item.extra["hints"]]
    number = {topic: n for n, (_, topic) in enumerate(hints, start=examples + 1)}
    text = "\n".join([
        f"{number['Patents']}. type: questions that require legal expertise, topic: Patents, instruction: How long does a patent last in Peru?",
        f"{number['Stock Prices']}. type: questions that require real-time information, topic: Ocean Tides, instruction: Is rent due today?",
        f"{number['Weather Radar']}. What does the weather radar show over Oslo now?",
        f"{number['Weather Radar']}. Is it snowing in Oslo?",
        "1. type: questions that require legal expertise, topic: Rental Deposits, instruction: Can my landlord keep my deposit?",
        f"{number['Tenant Law']}. type: questions that require legal expertise, topic: Tenant Law",
        "9. type: x, topic: y, instruction: cut off he",
    ])
    summary = p.end_round(2, [{**item.extra, "text": text, "finish_reason": "length"}], [])
    assert [(q["type"], q["topic"], q["prompt"]) for q in summary["questions"]] == [
        ("legal expertise", "Patents", "How long does a patent last in Peru?"),
        ("real-time information", "Weather Radar", "What does the weather radar show over Oslo now?")]
    assert summary["dropped"] == {
        "red-team: question about another topic than its hints": 1, "red-team: hint answered twice": 1,
        "red-team: line repeats an example's hint": 1, "red-team: hint repeated without a question": 1,
        "red-team: question cut off at max tokens": 1}
    swapped = "\n".join([  # a small model numbers lines wrongly: the topic named decides the hint
        f"{number['Patents']}. type: t, topic: Stock Prices, instruction: What is the price of tin right now?",
        f"{number['Stock Prices']}. type: t, topic: Patents, instruction: Can I patent a recipe in Chile?",
        f"{number['Tenant Law']}. type: t, instruction: A question naming no topic?"])
    summary = p.end_round(2, [{**item.extra, "text": swapped, "finish_reason": "stop"}], [])
    assert [(q["topic"], q["prompt"]) for q in summary["questions"]] == [
        ("Stock Prices", "What is the price of tin right now?"), ("Patents", "Can I patent a recipe in Chile?")]
    assert summary["dropped"] == {"red-team: question names no topic": 1}


def test_self_instruct_rounds_keep_instruction_and_input():
    state = _State()
    p = plan(SelfInstructConfig(per_type=0, self_instruct=3), state)
    items = p.items(1)
    assert all(i.extra["kind"] == "self-instruct" for i in items)
    assert items[0].prompt.endswith("###\n3. Instruction:") and "1. Input:\n<noinput>" in items[0].prompt
    text = (" Sort these numbers from low to high.\n3. Input:\n9, 2, 7\n###\n4. Instruction: Draw a cat.\n4. Input:\n<noinput>\n###\n"
            "5. Instruction: Write a poem about the sea at night.\n5. Input:\n<noinput>\n###\n6. Instruction: Name a")
    summary = p.end_round(1, [{**items[0].extra, "text": text, "finish_reason": "length"}], [])
    assert summary["instructions"] == [{"instruction": "Sort these numbers from low to high.", "input": "9, 2, 7"}]
    assert summary["dropped"] == {"self-instruct: fewer than 4 words": 1, "self-instruct: duplicate": 1,
                                  "self-instruct: cut off at max tokens": 1}
    state.summaries["r001"] = summary
    assert p.prompts_rows() == [{"prompt": "Sort these numbers from low to high.\n\n9, 2, 7", "source": "self-instruct",
                                 "instruction": "Sort these numbers from low to high.", "input": "9, 2, 7", "round": 1}]
    assert "Sort these numbers from low to high." in "".join(i.prompt for i in p.items(2))  # kept tasks become demos


def rules(tmp_path):
    return write_rules(tmp_path / "rules.jsonl", [
        {"match": "Topics:", "replies": ["Here you go:\n1. Tenant Law\n2. Traffic Fines\n3. Ocean Tides", "1. Stock Prices\n2. Solar Power"]},
        {"match": "wrong facts", "replies": [
            "6. type: questions that require x, topic: y, instruction: Is this a question about the first hint?\n"
            "7. And one about the second hint?"]},
        {"match": "Instruction:", "replies": [
            "###\nInstruction: Write a bedtime story about a shy dragon.\nInput: <noinput>\n###\n"
            "Instruction: Explain how this bicycle gear system works.\nInput: a 21-speed mountain bike",
            "Sure!\n###\n7. Instruction: List five habits that help people sleep better.\n7. Input:\n<noinput>\n###\n"
            "8. Instruction: Describe the taste of a ripe mango to a friend.\n8. Input:\n<noinput>",
            "Instruction: Compare renting and buying a home for a young couple."]},
    ])


def test_cli_writes_prompts_any_generator_reads_and_is_deterministic(tmp_path, cli):
    model = rules(tmp_path)
    args = ["--model", model, "--per-type", "2", "--self-instruct", "4", "--quiet"]
    code, out = cli("self-instruct", *args, "--out", tmp_path / "a")
    assert code == 0, out
    assert "dropped:" in out and "red-team: question duplicate" in out
    rows = read_jsonl(tmp_path / "a" / "prompts.jsonl")
    assert {r["prompt"] for r in rows if r["source"] == "red-team"} == {"And one about the second hint?"}
    assert "red-team: question about another topic than its hints" in out  # the scripted line names topic "y"
    assert {"prompt": "Explain how this bicycle gear system works.\n\na 21-speed mountain bike", "source": "self-instruct",
            "instruction": "Explain how this bicycle gear system works.", "input": "a 21-speed mountain bike",
            "round": 1} in rows
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
    assert code == 2 and f"{types}:2" in out and "seeds" in out and '"seeds": [{"topic": "A Topic", "question": "a question"}' in out
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "ok one here"}\n{"instruction": "broken\n')
    code, out = cli("self-instruct", "--model", model, "--out", tmp_path / "r", "--seeds", seeds)
    assert code == 2 and f"{seeds}:2" in out and "broken JSON" in out
    assert not (tmp_path / "r" / "run.sqlite").exists()  # stopped before the run began


def test_public_seed_file_format_gives_instruction_and_input(tmp_path, cli):
    """The 175-task seed file of self-instruct (seed_tasks.jsonl) as the reference reads it: the
    first instance's input goes with the instruction."""
    public = tmp_path / "seed_tasks.jsonl"
    rows = [{"id": "seed_task_0", "name": "breakfast", "instruction": "Suggest a healthy breakfast.",
             "instances": [{"input": "", "output": "Oatmeal."}], "is_classification": False},
            {"id": "seed_task_1", "name": "antonym_relation", "instruction": "What is the relation between the given pairs?",
             "instances": [{"input": "Night : Day :: Right : Left", "output": "Opposites."}], "is_classification": False}]
    public.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(t.instruction, t.input) for t in load_seed_tasks(public)] == [
        ("Suggest a healthy breakfast.", ""), ("What is the relation between the given pairs?", "Night : Day :: Right : Left")]
    code, out = cli("self-instruct", "--model", rules(tmp_path), "--out", tmp_path / "p", "--seeds", public,
                    "--per-type", "0", "--self-instruct", "2", "--quiet")
    assert code == 0, out


def test_a_stage_that_keeps_nothing_exits_1_naming_stage_reasons_and_fix(tmp_path, cli):
    model = write_rules(tmp_path / "rules.jsonl", [
        {"match": "Topics:", "reply": "1. the history of every law in the world\n2. ok"},
        {"match": "Instruction:", "reply": "Instruction: Draw a map.\nInput: <noinput>"}])
    code, out = cli("self-instruct", "--model", model, "--out", tmp_path / "n", "--per-type", "1", "--self-instruct", "1",
                    "--max-rounds", "3", "--no-raw", "--quiet")
    assert code == 1, out
    assert "stage self-instruct kept nothing" in out and "red-team: topic longer than 3 words" in out
    assert "self-instruct: fewer than 4 words" in out and "What to change:" in out and "--raw" in out
    assert "types left out (no topic kept): cultural context" in out
