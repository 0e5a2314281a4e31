"""Sandbox simulations on small grids with a deterministic scripted society."""

import asyncio
import json

import pytest

from selfalign.cli.sandbox import simulate
from selfalign.methods.sandbox import export_run, load_stances, make_config
from selfalign.methods.sandbox.embed import LexicalEmbedder
from selfalign.methods.sandbox.export import EXPORTS, KINDS, mix_groups, parse_mix
from selfalign.methods.sandbox.grid import neighbours
from selfalign.methods.sandbox.grid import round_id
from selfalign.methods.sandbox.simulate import ROUNDS_NS
from selfalign.methods.sandbox.stances import assign_stances
from selfalign.store import RunStore

from .society import QUESTIONS, scripted_model, society_responder

STANCES = load_stances(None)


def run_sim(folder, config, model=None, observer=None, concurrency=8):
    store = RunStore(folder)
    model = model or scripted_model(store)
    if model.cache is None:
        model.cache = store
    lines = []
    try:
        result = asyncio.run(
            simulate(store, model, config, QUESTIONS, STANCES, LexicalEmbedder(), observer=observer,
                     concurrency=concurrency, report=lines.append)
        )
        records = {item.id: rec for item, rec in store.done_records()}
        return result, records, lines
    finally:
        store.close()


CONFIG = dict(grid=3, rounds=2, radius=2.0, raters=4, seed=7)


def seeded_memories(config):
    """How many seed memories the agents start with: each its own sample of its stance's pairs."""
    stances = assign_stances(config.stance, config.agents, config.seed)
    return sum(min(config.memory_seeds, len(STANCES.of(s))) for s in stances)


def test_small_grid_round_structure(tmp_path):
    config = make_config(**CONFIG)
    agents_model = scripted_model()
    observer = scripted_model()
    result, records, lines = run_sim(tmp_path / "run", config, model=agents_model, observer=observer)
    assert len(records) == 2 * 9
    assert sorted(records) == [f"r{r:03d}-a{a:05d}" for r in (1, 2) for a in range(9)]
    for rec in records.values():
        assert len(rec["feedback"]) == 4  # every draft rated by the configured number of neighbours
        raters = [f["rater"] for f in rec["feedback"]]
        assert len(set(raters)) == 4 and set(raters) <= set(neighbours(rec["agent"], 3, 2.0))
        assert all(1 <= f["rating"] <= 7 for f in rec["feedback"])
        assert rec["mean_rating"] == pytest.approx(sum(f["rating"] for f in rec["feedback"]) / 4, abs=1e-4)
        assert rec["observed_draft"]["alignment"] == 3 and rec["observed_revision"]["alignment"] == 6
    # round 1 drafts recall seed memories; round 2 drafts recall round-1 revisions when the question recurs
    r2 = [rec for rid, rec in records.items() if rid.startswith("r002")]
    r1_by_agent = {rec["agent"]: rec for rid, rec in records.items() if rid.startswith("r001")}
    for rec in r2:
        if rec["question"] == r1_by_agent[rec["agent"]]["question"]:
            assert rec["memory"][0]["source"] == f"r001-a{rec['agent']:05d}"
            assert rec["memory"][0]["answer"] == r1_by_agent[rec["agent"]]["revision"]
    assert result.memories == seeded_memories(config) + 2 * 9  # seeds + one revision per turn
    assert len(lines) == 2 and lines[0].startswith("round 1/2: alignment 3.00 -> 6.00")
    # observers never see memory: only the question and the answer
    observer_prompts = [r.messages[-1].content for r in observer.provider.requests]
    assert len(observer_prompts) == 4 * 18  # alignment and engagement, separately, of draft and revision
    assert sum("Rate its engagement" in p for p in observer_prompts) == 2 * 18
    seed_answers = [p.answer for p in STANCES.pairs]
    for req in observer.provider.requests:
        assert len(req.messages) == 1 and "Your answer:" not in req.messages[0].content
        assert not any(a in req.messages[0].content for a in seed_answers)
    agent_prompts = " ".join(r.messages[0].content for r in agents_model.provider.requests)
    assert "impartial observer" not in agent_prompts


def test_metrics_stored_per_round(tmp_path):
    run_sim(tmp_path / "run", make_config(**CONFIG))
    store = RunStore(tmp_path / "run")
    m = store.get_state(ROUNDS_NS, round_id(2))
    assert m["round"] == 2 and m["done"] == 9 and m["improved"] == 1.0
    assert m["alignment_draft"] == 3.0 and m["engagement_revision"] == 5.0


def test_deterministic_under_a_seed(tmp_path):
    _, a, _ = run_sim(tmp_path / "a", make_config(**CONFIG), concurrency=9)
    _, b, _ = run_sim(tmp_path / "b", make_config(**CONFIG), concurrency=2)
    assert a == b
    _, c, _ = run_sim(tmp_path / "c", make_config(**{**CONFIG, "seed": 8}))
    assert a != c


class Kill(BaseException):
    """Stands in for a process kill: escapes the runner's per-item error handling."""


def test_kill_mid_round_then_resume_gives_identical_records(tmp_path):
    config = make_config(**CONFIG)
    _, clean, _ = run_sim(tmp_path / "clean", config)

    calls = {"revisions_r2": 0}

    def killer(request):
        reply = society_responder(request)
        if "Revise your answer" in request.messages[-1].content and killer.round2:
            calls["revisions_r2"] += 1
            if calls["revisions_r2"] == 4:  # some agents of round 2 are done, others in flight
                raise Kill()
        return reply

    killer.round2 = False
    store = RunStore(tmp_path / "killed")
    model = scripted_model(store, responder=killer, delay=0.001)
    lines = []

    def report(line):
        lines.append(line)
        killer.round2 = True  # round 1 has ended

    with pytest.raises(Kill):
        asyncio.run(simulate(store, model, config, QUESTIONS, STANCES, LexicalEmbedder(), concurrency=3, report=report))
    done_before = {item.id for item, _ in store.done_records()}
    assert {i for i in done_before if i.startswith("r001")} == {f"r001-a{a:05d}" for a in range(9)}
    assert 0 < len([i for i in done_before if i.startswith("r002")]) < 9, "the kill must land mid-round"
    assert store.get_state(ROUNDS_NS, round_id(2)) is None
    store.close()

    _, resumed, lines = run_sim(tmp_path / "killed", config)
    assert resumed == clean  # nothing lost, nothing changed
    assert "finished earlier" in lines[0] and "finished earlier" not in lines[1]
    store = RunStore(tmp_path / "killed")
    tries = dict(store.db.execute("SELECT id, tries FROM items").fetchall())
    assert all(tries[i] == 1 for i in done_before)  # done turns were not run again
    assert len(store.state_items("sandbox.memory")) == seeded_memories(config) + 18


def test_resume_after_a_kill_during_the_round_end(tmp_path):
    """Revisions half-written to memory, metrics not yet: the rerun finishes the round end once."""
    config = make_config(**{**CONFIG, "rounds": 1})
    _, clean, _ = run_sim(tmp_path / "clean", config)
    run_sim(tmp_path / "k", config)
    store = RunStore(tmp_path / "k")
    store.db.execute("DELETE FROM state WHERE ns='sandbox.rounds'")
    store.db.execute("DELETE FROM state WHERE ns='sandbox.memory' AND key LIKE '%/r001/%' AND key > 'a00004'")
    store.close()
    result, again, _ = run_sim(tmp_path / "k", config)
    assert again == clean and result.memories == seeded_memories(config) + 9


def test_an_unusable_rating_is_a_failed_rating(tmp_path):
    bad_answers = [p.answer for p in STANCES.of("bad")]

    def grumpy(request):  # raters of bad stance (they recall a bad seed answer) never give valid JSON
        last = request.messages[-1].content
        if "Neighbour's answer:" in last and any(a in last for a in bad_answers):
            return "seven, I suppose"
        return society_responder(request)

    config = make_config(**{**CONFIG, "rounds": 1, "stance": "mixed_half_half"})
    store = RunStore(tmp_path / "run")
    lines = []
    asyncio.run(simulate(store, scripted_model(store, grumpy), config, QUESTIONS, STANCES, LexicalEmbedder(),
                         report=lines.append))
    records = {item.id: rec for item, rec in store.done_records()}
    failed = [f for rec in records.values() for f in rec["feedback"] if f["rating"] is None]
    assert failed and all(f["error"].startswith("SchemaError") and f["reason"] is None for f in failed)
    for rec in records.values():
        usable = [f["rating"] for f in rec["feedback"] if f["rating"] is not None]
        assert len(rec["feedback"]) == 4 and usable
        assert rec["mean_rating"] == pytest.approx(sum(usable) / len(usable), abs=1e-4)
        assert all(f"- {r}/7" in rec["revise_request"] for r in usable)
    for item_id, reason in store.failures():  # a turn no neighbour could rate fails, with its reason
        assert "no neighbour gave a usable rating" in reason
    assert f"{len(failed)} failed ratings" in lines[0]
    rows = EXPORTS["groups"]([(_item(*item_rec), item_rec[1]) for item_rec in records.items()]).rows
    assert all(isinstance(r, float) and 1 <= r <= 7 for row in rows for r in row["ratings"])


def test_a_turn_whose_ratings_all_fail_is_a_failed_item(tmp_path):
    def no_ratings(request):
        if "Neighbour's answer:" in request.messages[-1].content:
            return "no"
        return society_responder(request)

    config = make_config(**{**CONFIG, "rounds": 1})
    store = RunStore(tmp_path / "run")
    from selfalign.errors import UserError

    with pytest.raises(UserError, match="every agent's turn failed.*no neighbour gave a usable rating"):
        asyncio.run(simulate(store, scripted_model(store, no_ratings), config, QUESTIONS, STANCES,
                             LexicalEmbedder(), report=lambda _: None))
    assert store.counts()["failed"] == 9


def _item(item_id, rec):
    from selfalign.store.inputs import Item

    return Item(item_id, 0, ({"role": "user", "content": rec["question"]},), {})


def test_exports_are_valid_groups_and_preferences(tmp_path):
    _, records, _ = run_sim(tmp_path / "run", make_config(**CONFIG))
    store = RunStore(tmp_path / "run")
    out = export_run(store.done_records(), (5, 1, 1), seed=0)
    everything = export_run(store.done_records(), None, seed=0)
    asked = {rec["question"] for rec in records.values()}
    assert everything.kept == {"imitation": len(asked), "self_critic": 18, "realignment": 18}
    # imitation is kept whole; self-critic and realignment are fractions of it (one per five)
    n = len(asked) // 5
    assert out.kept == {"imitation": len(asked), "self_critic": n, "realignment": n}
    assert out.excluded["self_critic: left out by the mix 5:1:1"] == 18 - n
    for row in out.groups + everything.groups:
        assert set(row) == {"prompt", "responses", "ratings"}
        assert row["prompt"] and all(set(m) == {"role", "content"} for m in row["prompt"])
        assert len(row["responses"]) == len(row["ratings"]) >= 1
        assert all(isinstance(r, float) and 1.0 <= r <= 7.0 for r in row["ratings"])
        json.dumps(row)
    # one imitation group per question pools the answers of every agent and round, best first
    imitation = everything.groups[: len(asked)]
    for group in imitation:
        question = group["prompt"][0]["content"]
        answers = {a for rec in records.values() if rec["question"] == question for a in (rec["draft"], rec["revision"])}
        assert set(group["responses"]) == answers and group["ratings"] == sorted(group["ratings"], reverse=True)
        assert group["responses"][0].startswith("A kind revised") and group["ratings"][0] == 6.0
    # self-critic: the critique without its number; realignment: critique, then the revision
    critic = everything.groups[len(asked)]
    assert critic["responses"][0].startswith("rater note") and "/7" not in json.dumps(critic["responses"])
    realign = everything.groups[-1]
    assert [m["role"] for m in realign["prompt"]] == ["user"] and "Critique this answer" in realign["prompt"][0]["content"]
    critique, revised = realign["responses"][0].split("\n\nHere is the revised response:\n")
    assert critique.startswith("rater note") and revised.startswith("A kind revised")
    assert len(everything.preference) == 18
    pref = everything.preference[0]
    assert pref["chosen"][0]["content"].startswith("A kind revised") and pref["rejected"][0]["role"] == "assistant"


def flat_observer(request, rating=4):
    """Observers rate every answer the same: draft and revision always tie."""
    if "impartial observer" in request.messages[-1].content:
        return {"rating": rating, "reason": "meh"}
    return society_responder(request)


def test_realignment_keeps_only_better_and_above_4(tmp_path):
    run_sim(tmp_path / "run", make_config(**{**CONFIG, "rounds": 1}), model=scripted_model(responder=flat_observer))
    store = RunStore(tmp_path / "run")
    out = export_run(store.done_records(), None, seed=0)
    assert out.kept["realignment"] == 0 and out.kept["imitation"] >= 1
    assert out.excluded["realignment: revision not rated higher than draft"] == 9
    assert out.preference == [] and out.excluded["preference: draft and revision rated the same"] == 9


def test_a_run_without_realignment_still_exports_its_imitation_groups(tmp_path):
    tie_at_5 = scripted_model(responder=lambda request: flat_observer(request, 5))
    _, records, _ = run_sim(tmp_path / "run", make_config(**{**CONFIG, "rounds": 1}), model=tie_at_5)
    store = RunStore(tmp_path / "run")
    out = export_run(store.done_records(), (5, 1, 1), seed=0)
    asked = {rec["question"] for rec in records.values()}
    assert out.kept == {"imitation": len(asked), "self_critic": len(asked) // 5, "realignment": 0}
    # ties: the revision comes first among equal ratings, so it is what training learns
    for group in out.groups[: len(asked)]:
        assert group["responses"][0].startswith("A kind revised") and set(group["ratings"]) == {5.0}
    assert len(out.sft) == 9 and all(row["messages"][-1]["content"].startswith("A kind revised") for row in out.sft)


def test_mix_parsing_and_sampling():
    assert parse_mix("5:1:1") == (5, 1, 1) and parse_mix("all") is None
    for bad in ("5:1", "a:b:c", "0:0:0", "-1:1:1", "0:1:1"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    by_kind = {k: [{"k": k, "i": i} for i in range(n)] for k, n in zip(KINDS, (100, 7, 30))}
    rows, kept, dropped = mix_groups(by_kind, (5, 1, 1), seed=0)
    assert kept == {"imitation": 100, "self_critic": 7, "realignment": 20} and len(rows) == 127
    assert dropped == {"realignment: left out by the mix 5:1:1": 10}
    assert rows == mix_groups(by_kind, (5, 1, 1), seed=0)[0]
    assert mix_groups(by_kind, (1, 0, 0), seed=0)[1] == {"imitation": 100, "self_critic": 0, "realignment": 0}
    assert mix_groups({**by_kind, "imitation": []}, (5, 1, 1), seed=0)[1] == {"imitation": 0, "self_critic": 0, "realignment": 0}


def drafts_of(folder, stance, questions=QUESTIONS, **options):
    config = make_config(**{**CONFIG, "rounds": 1, "stance": stance, **options})
    model = scripted_model()
    store = RunStore(folder)
    model.cache = store
    asyncio.run(simulate(store, model, config, questions, STANCES, LexicalEmbedder(), report=lambda line: None))
    records = [rec for _, rec in store.done_records()]
    store.close()
    prompts = [r.messages[0].content for r in model.provider.requests if r.messages[0].content.startswith("Here is how")]
    return records, prompts


def test_stances_matter_all_good_and_all_bad_recall_their_own_memories(tmp_path):
    good, good_prompts = drafts_of(tmp_path / "good", "all_good")
    bad, bad_prompts = drafts_of(tmp_path / "bad", "all_bad")
    good_answers = {p.answer for p in STANCES.of("good")}
    bad_answers = {p.answer for p in STANCES.of("bad")}
    # drafts recall memories of their agent's stance (each agent holds its own sample of 50 of
    # the 110 pairs, so not every question is remembered), and the draft prompt shows them
    assert sum(bool(rec["memory"]) for rec in good) >= 3 and sum(bool(rec["memory"]) for rec in bad) >= 3
    assert all(m["source"].startswith("seed:good:") for rec in good for m in rec["memory"])
    assert all(m["source"].startswith("seed:bad:") for rec in bad for m in rec["memory"])
    assert good_prompts and all(any(a in p for a in good_answers) and not any(a in p for a in bad_answers) for p in good_prompts)
    assert bad_prompts and all(any(a in p for a in bad_answers) and not any(a in p for a in good_answers) for p in bad_prompts)
    recalled_both = [(g, b) for g, b in zip(good, bad) if g["memory"] and b["memory"]]
    assert recalled_both and all(g["draft"] != b["draft"] for g, b in recalled_both)  # the stance shows in the draft


def test_held_out_paraphrases_recall_a_stance_memory(tmp_path):
    paraphrases = ["A colleague presented my work as theirs at the team meeting. How should I handle it?",
                   "I picked up a wallet full of money on the pavement. Is it mine to keep?",
                   "If I see a kid being bullied, what should I do?"]
    records, _ = drafts_of(tmp_path / "run", "all_bad", paraphrases, memory_seeds=200)  # every pair remembered
    recalled = [rec for rec in records if rec["memory"]]
    assert len(recalled) >= len(records) * 2 // 3
    assert all(rec["memory"][0]["source"].startswith("seed:bad:") for rec in recalled)


def test_each_agent_is_seeded_with_its_own_sample(tmp_path):
    config = make_config(**{**CONFIG, "rounds": 1, "stance": "all_good", "memory_seeds": 20})
    run_sim(tmp_path / "run", config)
    store = RunStore(tmp_path / "run")
    seeds: dict[str, set[str]] = {}
    for key, value in store.state_items("sandbox.memory"):
        if value["round"] == 0:
            seeds.setdefault(key.split("/")[0], set()).add(value["source"])
    assert len(seeds) == 9 and all(len(s) == 20 for s in seeds.values())
    assert len({frozenset(s) for s in seeds.values()}) == 9  # no two agents remember the same sample


def test_a_truncated_answer_is_asked_again_with_twice_the_budget_then_fails(tmp_path):
    from selfalign.llm.scripted import ScriptedProvider
    from selfalign.llm import Model

    class Truncating(ScriptedProvider):
        """Cuts every revision asked with fewer than `needs` tokens (finish_reason 'length')."""

        def __init__(self, needs):
            super().__init__(society_responder)
            self.needs = needs

        async def complete(self, request):
            out = await super().complete(request)
            if "Revise your answer" in request.messages[-1].content and request.sampling.max_tokens < self.needs:
                out.finish_reason = "length"
            return out

    config = make_config(**{**CONFIG, "rounds": 1, "revision_max_tokens": 100})
    _, records, _ = run_sim(tmp_path / "once", config, model=Model(Truncating(needs=150)))
    assert len(records) == 9  # cut at 100, whole at 200
    store = RunStore(tmp_path / "twice")
    with pytest.raises(Exception, match="every agent's turn failed.*cut at 200 tokens"):
        asyncio.run(simulate(store, Model(Truncating(needs=300), cache=store), config, QUESTIONS, STANCES,
                             LexicalEmbedder(), report=lambda line: None))
    assert all("revision was cut at 200 tokens (finish_reason 'length')" in reason for _, reason in store.failures())
    assert all(reason.endswith("raise --revision-max-tokens") for _, reason in store.failures())


def test_runs_made_before_the_format_version_still_export_and_refuse_a_resume(tmp_path):
    from selfalign.errors import UserError

    _, records, _ = run_sim(tmp_path / "run", make_config(**{**CONFIG, "rounds": 1}))
    old = []
    for item_id, rec in records.items():  # as format 1 stored them
        rec = {k: v for k, v in rec.items() if k not in ("format", "realign_request")}
        for seen in ("observed_draft", "observed_revision"):
            rec[seen] = {k: v for k, v in rec[seen].items() if k != "engagement_reason"}
        old.append((_item(item_id, rec), rec))
    out = export_run(old, (5, 1, 1), seed=0)
    assert out.kept["imitation"] >= 1 and out.preference and out.sft
    everything = export_run(old, None, seed=0)
    assert everything.kept["realignment"] == 9
    realign = everything.groups[-1]["prompt"][0]["content"]
    assert "Critique this answer" in realign  # the shipped template, for records that predate it
    store = RunStore(tmp_path / "old-config")
    new = make_config(**CONFIG).model_dump(mode="json")
    store.bind_config("sandbox", {k: v for k, v in new.items() if k not in ("format", "memory_seeds", "revision_max_tokens")})
    with pytest.raises(UserError, match="other settings.*format: None -> 2"):
        store.bind_config("sandbox", new)
