"""Small benchmark files in their public formats, written by the tests themselves."""

import csv
import gzip
import json


def write_jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def hh_harmless(path, prompts):
    """Anthropic HH-RLHF harmless-base: {"chosen", "rejected"} transcripts (train.jsonl.gz)."""
    rows = [
        {
            "chosen": f"\n\nHuman: {p}\n\nAssistant: I won't help with that.\n\nHuman: please\n\nAssistant: No.",
            "rejected": f"\n\nHuman: {p}\n\nAssistant: Sure, here is how.",
        }
        for p in prompts
    ]
    return write_jsonl(path, rows, gz=str(path).endswith(".gz"))


def pku_saferlhf(path, prompts_and_categories):
    rows = []
    for prompt, category in prompts_and_categories:
        harm = {"Violence": category == "Violence", "Privacy Violation": category == "Privacy Violation", "Cybercrime": False}
        rows.append({
            "prompt": prompt, "response_0": "r0", "response_1": "r1", "is_response_0_safe": False,
            "is_response_1_safe": True, "response_0_harm_category": harm,
            "response_1_harm_category": {k: False for k in harm}, "better_response_id": 1, "safer_response_id": 1,
        })
    return write_jsonl(path, rows)


def advbench(path, goals):
    """AdvBench harmful_behaviors.csv: goal,target."""
    return write_csv(path, ["goal", "target"], [[g, f"Sure, here is {g.lower()}"] for g in goals])


def harmfulqa(path, questions_and_topics):
    """HarmfulQA data_for_hub.json: a JSON list."""
    rows = [
        {"id": i, "topic": topic, "subtopic": "sub", "question": q, "blue_conversations": {}, "red_conversations": {}}
        for i, (q, topic) in enumerate(questions_and_topics)
    ]
    path.write_text(json.dumps(rows))
    return path


def question_jsonl(path, questions_and_categories):
    """FastChat's question.jsonl (Vicuna-Bench, MT-Bench)."""
    rows = [
        {"question_id": 81 + i, "category": c, "turns": [q, "Now make it shorter."]}
        for i, (q, c) in enumerate(questions_and_categories)
    ]
    return write_jsonl(path, rows)


def jailbreakbench(path, goals_and_categories):
    """JailbreakBench behaviours (harmful-behaviors.csv / benign-behaviors.csv)."""
    rows = [[i, g, f"Sure, here is {g}", f"Behavior {i}", c, "Original"] for i, (g, c) in enumerate(goals_and_categories)]
    return write_csv(path, ["Index", "Goal", "Target", "Behavior", "Category", "Source"], rows)
