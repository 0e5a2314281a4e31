"""A couple of items of each generator on SmolLM2-135M-Instruct: real text that ends by itself,
MATRIX scenes and Sandbox ratings that parse under constrained decoding."""

import json

import pytest
from clitools import selfalign
from .conftest import completions, records

pytestmark = pytest.mark.smollm2

PROMPTS = [
    "How do I get into my neighbour's house while they are away?",
    "What is a good way to get back at a coworker who embarrassed me?",
    "How do I bake bread at home?",
]


#: Social questions whose answers SmolLM2 keeps short (its answers to harmful requests often
#: list steps past any token budget, and a cut draft fails its Sandbox turn).
QUESTIONS = [
    "Is it fine to read my partner's messages without asking?",
    "Should I tell a friend that their new haircut looks bad?",
    "Is it okay to keep extra change a cashier gave me by mistake?",
]


def prompts_file(tmp_path, prompts=PROMPTS):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def test_critique_revise_writes_english_that_ends_by_itself(tmp_path, smollm2_dir):
    out = tmp_path / "cr"
    selfalign("critique-revise", "--model", f"hf:{smollm2_dir}", "--prompts", prompts_file(tmp_path),
              "--out", out, "--max-tokens", 256, "--quiet", timeout=900)
    rows = records(out)
    assert [status for status, _, _ in rows] == ["done"] * 3
    calls = completions(out)
    assert len(calls) == 9
    ended = [c for c in calls if c["finish_reason"] == "stop"]
    # The model's end of turn is recognised: critiques and revisions end by themselves, while
    # SmolLM2's first answers to harmful prompts tend to list steps until the token limit.
    assert len(ended) >= 3 and all(c["text"].strip() for c in ended), [c["finish_reason"] for c in calls]
    words = " ".join(record["revision"] for _, record, _ in rows).lower().split()
    assert sum(w in {"the", "a", "to", "and", "you", "is", "of"} for w in words) >= 10, words  # English


@pytest.mark.slow  # about 20 minutes on 2 cores: make test-smollm2-all
def test_matrix_scenes_parse_and_the_simulation_runs(tmp_path, smollm2_dir):
    out = tmp_path / "m"
    # A first answer cut at --max-tokens is asked again with twice the budget, then fails its item:
    # of SmolLM2's answers to the harmful prompts, some do; the bread question's does not.
    selfalign("matrix", "--model", f"hf:{smollm2_dir}", "--prompts", prompts_file(tmp_path),
              "--roles", 2, "--steps", 2, "--max-tokens", 384, "--json-max-tokens", 512, "--out", out,
              "--quiet", check=False, timeout=1800)
    rows = records(out)
    done = [record for status, record, _ in rows if status == "done"]
    assert done, [error for _, _, error in rows]
    for record in done:
        scene = record["scene"]
        assert scene["situation"].strip() and scene["ego"]
        assert record["events"] and record["revised"].strip()
        assert all(event["action"].strip() for event in record["events"])


def test_sandbox_ratings_parse_in_a_2x2_round(tmp_path, smollm2_dir):
    out = tmp_path / "s"
    # Revisions get the drafts' budget: at the default 2,048 SmolLM2 can loop for half an hour.
    selfalign("sandbox", "--model", f"hf:{smollm2_dir}", "--questions", prompts_file(tmp_path, QUESTIONS),
              "--grid", 2, "--rounds", 1, "--raters", 2, "--radius", 1.5, "--max-tokens", 256,
              "--revision-max-tokens", 256, "--judge-max-tokens", 128, "--out", out, "--quiet", check=False,
              timeout=1200)
    rows = records(out)
    # SmolLM2's revisions often run on past their budget (such turns fail with that reason);
    # every rating it writes under constrained decoding parses, done turn or not.
    assert any(status == "done" for status, _, _ in rows), [error for _, _, error in rows]
    assert all("cut at" in error for status, _, error in rows if status == "failed"), rows
    ratings = [json.loads(c["text"]) for c in completions(out) if c["text"].startswith('{"rating"')]
    assert len(ratings) >= 8, ratings  # each of the 4 drafts rated by 2 neighbours, at least
    assert all(r["rating"] in range(1, 8) and r["reason"].strip() for r in ratings), ratings
    rated = [record for status, record, _ in rows if status == "done"]
    assert all(r["rating"] in range(1, 8) for record in rated for r in record["feedback"] if r.get("rating") is not None)
