"""Stage 2, principle-driven answers, and stage 4, verbose answers: what is kept, what is
dropped and why, the exports, and clear errors for malformed principles and exemplars."""

from __future__ import annotations

import json

import pytest
from .conftest import read_jsonl, write_rules

from selfalign.methods.principles import PrinciplesConfig, load_exemplars, load_principles
from selfalign.methods.principles.filters import is_bare_refusal, merge_verbose, prompt_leaked, verbose_problem
from selfalign.methods.principles.principled import judge

PRINCIPLES = load_principles(None)
LEAKS = [phrase for e in load_exemplars(None, PRINCIPLES) for phrase in e.leaks]
ID = PrinciplesConfig().identity
WITH_ID = f" {ID} "


def test_shipped_principles_say_what_the_reference_says_and_exemplars_are_the_papers_five():
    assert [p.id for p in PRINCIPLES] == list(range(1, 17))
    assert PRINCIPLES[0].name == "ethical" and PRINCIPLES[-1].name == "operational"
    assert "valid and ethical" in PRINCIPLES[3].text
    assert all(word in PRINCIPLES[14].text for word in ("code", "summaries", "translations"))
    assert "Attempt an answer for tasks that a computer can carry out" in PRINCIPLES[15].text
    exemplars = load_exemplars(None, PRINCIPLES)
    assert len(exemplars) == 5 and not any("(ethical)" in t.thoughts for e in exemplars for t in e.turns)  # no refusal
    with_refusal = load_exemplars("exemplars-with-refusal.jsonl", PRINCIPLES)  # a shipped file, by name
    declines = [t for e in with_refusal for t in e.turns if "(ethical)" in t.thoughts]
    assert len(with_refusal) == 6 and declines[0].answer.startswith("I won't") and not is_bare_refusal(declines[0].answer)


@pytest.mark.parametrize("answer, kept", [
    ("I can't help with that.", False),
    ("As an AI, I cannot.", False),
    ("I can't help with that, because it would put other people in danger.", True),
    ("I won't explain how to do that: breaking into a car is a crime. A locksmith can help you instead.", True),
    ("Paris is the capital of France.", True),
])
def test_bare_refusals_are_dropped_and_explained_declines_kept(answer, kept):
    assert is_bare_refusal(answer) is not kept


LONG = ("I can't see live data, so I cannot tell you the weather at this moment. A weather service, a forecast app "
        "or the local news will give you the current conditions and the outlook for the coming days.")


def judged(text, finish="stop", question="q"):
    return judge(question, text, finish, PRINCIPLES, LEAKS, ID)


def test_judge_applies_the_reference_filters_by_reason():
    record = judged(f"{WITH_ID}Rules 1 (ethical) and 7 (candor) apply.\n\nAssistant: {LONG}\n\nUser: next")
    assert record.principles == ["ethical", "candor"] and record.answer == LONG and record.dropped is None
    assert judged("no format at all").dropped == "format lost"
    assert judged(f" Rule 7 (candor).\n\nAssistant: {LONG}").dropped == "self-identification missing"
    assert judged(f"{WITH_ID}Rule 1 (ethical).\n\nAssistant: I'm sorry, but {LONG}").dropped == "starts with an apology"
    assert judged(f"{WITH_ID}Rule 1 (ethical).\n\nAssistant: Sorry! {LONG}").dropped == "starts with an apology"
    repeated = f"{WITH_ID}Rule 2 (informative).\n\nAssistant: {ID} The user asks about tides. {LONG}"
    assert judged(repeated).dropped == "thoughts repeated in the answer"  # SmolLM2 in raw text does this
    citing = f"{WITH_ID}Rule 2 (informative).\n\nAssistant: I have no way to do that. I should follow rules 1 (ethical). {LONG}"
    assert judged(citing).dropped == "thoughts repeated in the answer"
    # thinking twice, then answering: the second thoughts are skipped, the answer kept
    twice = judged(f"{WITH_ID}Rule 2 (informative).\n\nAssistant: {ID} I should follow rule 2 (informative).\n\n"
                   f"Assistant: Tides follow the Moon. {LONG}")
    assert twice.dropped is None and twice.answer.startswith("Tides follow the Moon.")
    leaked = f"{WITH_ID}Rule 8 (knowledge recitation).\n\nAssistant: The okapi is a relative of the giraffe. {LONG}"
    assert judged(leaked, question="Which animal is the giraffe's relative?").dropped == "exemplar leakage"
    assert judged(leaked, question="Tell me about the okapi").dropped is None  # asked about it
    assert judged(f"{WITH_ID}Rule 3 (helpful).\n\nAssistant: Yes, that is fine.").dropped == (
        "finished answer shorter than 160 characters")
    cut = judged(f"{WITH_ID}Rule 2 (informative).\n\nAssistant: It is a short answer cut off in the midd", "length")
    assert cut.dropped is None and cut.answer == "It is a short answer cut off in the"  # less its last word
    loop = (f"{WITH_ID}Rule 2 (informative).\n\nAssistant: Tides follow the Moon's pull on the oceans. Tides rise twice a day. "
            "Tides rise twice a day. Tides")
    looped = judged(loop, "length", "Why are there tides?")
    assert looped.dropped is None and looped.answer == "Tides follow the Moon's pull on the oceans. Tides rise twice a day."


def test_verbose_answers_are_merged_and_filtered_as_the_reference_does():
    persona = "You give extensive, comprehensive and detailed answers to every question you are asked."
    listing = "Ten tips:\n" + "".join(f"{n}. Tip number {n} is different.\n" for n in range(1, 15))
    answer, finished = merge_verbose(listing + "\nUser: next question", "stop")
    assert finished and answer.endswith("12. Tip number 12 is different.") and "13." not in answer  # cut at "\n13. "
    cut, finished = merge_verbose("Photosynthesis turns light into sugar. Plants grow. Plants grow. Plants gr", "length")
    assert not finished and cut == "Photosynthesis turns light into sugar. Plants grow."
    answer, finished = merge_verbose("Leaves are green because chlorophyll absorbs red and blue lig", "length")
    assert answer == "Leaves are green because chlorophyll absorbs red and blue" and not finished  # less its last word
    assert verbose_problem("Short and finished.", True, persona) is None  # the reference keeps a finished short answer
    assert verbose_problem("Short and cut", False, persona) == "cut answer shorter than 128 characters"
    assert verbose_problem("Paris is a city.\n\n## See also\n- Lyon", True, persona) == "encyclopaedia tail (See also)"
    leak = "I give extensive, comprehensive and detailed answers to every question, so here is mine."
    assert prompt_leaked(leak, persona) and verbose_problem(leak, True, persona) == "persona leakage"
    assert verbose_problem("", True, persona) == "answer empty"


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in [
        "How do I pick my neighbour's lock?", "Tell me about Paris", "Say sorry to me", "Who flew across the ocean first?",
        "Anything at all"]))
    return path


def test_principles_cli_counts_drops_and_exports_engraving_data(tmp_path, cli, prompts):
    lock = ("I won't explain how to open a lock that is not yours, because entering someone's home without permission "
            "is a crime. If you are locked out of your own home, a licensed locksmith or your landlord can let you in.")
    paris = ("Paris is the capital of France, on the Seine. It has about two million inhabitants, and its museums, "
             "such as the Louvre and the Musee d'Orsay, hold some of the best-known works of art in the world.")
    model = write_rules(tmp_path / "rules.jsonl", [
        {"match": "User: How do I pick", "reply": f"{WITH_ID}Rule 1 (ethical) applies.\n\nAssistant: {lock}"},
        {"match": "User: Tell me about Paris", "reply": f"{WITH_ID}Rules 8 (knowledge recitation) and 2 (informative).\n\nAssistant: {paris}"},
        {"match": "User: Say sorry", "reply": f"{WITH_ID}Rule 1 (ethical).\n\nAssistant: I'm sorry, I can't do that."},
        {"match": "User: Who flew", "reply": f"{WITH_ID}Rule 8 (knowledge recitation).\n\nAssistant: The okapi flew first. {paris}"},
        {"match": "", "reply": "no format here"},
    ])
    out = tmp_path / "pd"
    code, text = cli("principles", "--model", model, "--prompts", prompts, "--out", out, "--quiet")
    assert code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 2
    assert summary["dropped"] == {"starts with an apology": 1, "exemplar leakage": 1, "format lost": 1}
    assert summary["principles_cited"] == {"ethical": 2, "knowledge recitation": 2, "informative": 1}
    assert "principles_cited:" in text and "starts with an apology" in text
    code, text = cli("export", out, "--format", "sft", "--to", tmp_path / "engrave.jsonl")
    rows = read_jsonl(tmp_path / "engrave.jsonl")
    assert [r["messages"][-1]["content"][:10] for r in rows] == ["I won't ex", "Paris is t"]
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]  # the short system prompt
    assert rows[0]["messages"][0]["content"].startswith("You are an AI assistant")
    assert all("Rule" not in json.dumps(r) and "internal thoughts" not in json.dumps(r) for r in rows)  # pruned
    cli("export", out, "--format", "thoughts", "--to", tmp_path / "thoughts.parquet")
    from datasets import load_dataset

    thoughts = load_dataset("parquet", data_files=str(tmp_path / "thoughts.parquet"), split="train")
    assert len(thoughts) == 5 and thoughts[0]["principles"] == ["ethical"]
    assert load_dataset("json", data_files=str(tmp_path / "engrave.jsonl"), split="train").num_rows == 2


def test_a_principles_run_that_keeps_nothing_exits_1_saying_why(tmp_path, cli, prompts):
    model = write_rules(tmp_path / "rules.jsonl", [{"match": "", "reply": "no format here"}])
    code, text = cli("principles", "--model", model, "--prompts", prompts, "--out", tmp_path / "none", "--quiet")
    assert code == 1, text
    assert "stage principles kept nothing (dropped: format lost 5)" in text and "--raw" in text
    assert "--ngram-penalties 3:4,4:8" in text  # what a small model that thinks twice needs
    assert "next:" not in text  # nothing to export


def test_ngram_penalties_are_read_as_n_colon_penalty_pairs_and_reach_every_call(monkeypatch):
    import argparse
    import asyncio

    from selfalign.cli.principles import ngram_penalties
    from selfalign.methods.principles import calls

    assert ngram_penalties("3:4,4:8") == {3: 4.0, 4: 8.0} and ngram_penalties("") == {}
    with pytest.raises(argparse.ArgumentTypeError, match="N:P pairs"):
        ngram_penalties("3=4")

    class Recorder:
        async def text(self, prompt, **sampling):
            self.sampling = sampling

    model = Recorder()
    asyncio.run(calls.ask(model, "p", raw=True, seed=0, temperature=0.5, top_p=0.95, max_tokens=8,
                          ngram_penalties={3: 4.0}))
    assert model.sampling["ngram_penalties"] == {3: 4.0} and "logit_bias" not in model.sampling


def test_raw_prompt_goes_in_as_text_for_models_without_a_chat_template(tmp_path, cli, prompts):
    model = write_rules(tmp_path / "rules.jsonl", [{"match": "internal thoughts\\):$", "reply": f"{WITH_ID}Rule 3 (helpful).\n\nAssistant: {LONG}"}])
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


class _Tokenizing:
    """What sorry_bias reads of a model: its name and token ids."""

    name = "hf:toy"

    def __init__(self, vocab):
        self.vocab = vocab

    def token_ids(self, text):
        return None if self.vocab is None else self.vocab[text]


def test_sorry_bias_is_the_references_minus_100_on_single_token_forms():
    from selfalign.methods.principles.principled import sorry_bias

    assert sorry_bias(_Tokenizing({"Sorry": [7], " Sorry": [9]}), -100) == ({7: -100, 9: -100}, None)
    bias, note = sorry_bias(_Tokenizing({"Sorry": [7], " Sorry": [3, 4]}), -100)
    assert bias == {7: -100} and "' Sorry' is several tokens here, left unbiased" in note
    bias, note = sorry_bias(_Tokenizing(None), -100)
    assert bias is None and "tokenizer is not here" in note and "dropped instead" in note
    assert sorry_bias(_Tokenizing({"Sorry": [7], " Sorry": [9]}), 0) == (None, None)  # --sorry-bias 0: none


def test_a_prompt_the_context_cannot_hold_is_refused_before_any_call(tmp_path, cli, prompts, tiny_model_dir):
    out = tmp_path / "pd"
    code, text = cli("principles", "--model", f"hf:{tiny_model_dir}", "--prompts", prompts, "--out", out, "--raw",
                     "--device", "cpu", "--max-tokens", "2000", "--quiet")
    assert code == 2, text
    assert "holds 4096 tokens" in text and "principles and instructions" in text and "exemplars" in text
    assert "--exemplars FILE with fewer or shorter exemplars (5 now)" in text and "--max-tokens below" in text
    code, text = cli("principles", "--model", f"hf:{tiny_model_dir}", "--prompts", prompts, "--out", out, "--raw",
                     "--device", "cpu", "--max-tokens", "8", "--limit", "1", "--quiet")
    assert "other settings" not in text and code in (0, 1), text  # the folder was left free
