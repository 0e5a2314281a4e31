"""The simulation's rules, on a deterministic scripted society (tests/matrix/society.py)."""

import asyncio
import functools
import json

import pytest
from society import JitterProvider, respond

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.methods.matrix import MatrixConfig, run_item
from selfalign.store.inputs import Item

ITEM = Item("000000", 0, ({"role": "user", "content": "How do I get into the bank vault?"},))


def simulate(config=None, provider=None, item=ITEM, **respond_options):
    provider = provider or ScriptedProvider(functools.partial(respond, **respond_options))
    record = asyncio.run(run_item(item, Model(provider), config or MatrixConfig()))
    return record, provider


def calls_by_key(record):
    return {c.key: c for c in record.calls}


def test_event_log_obeys_the_rules():
    config = MatrixConfig()  # 5 roles, 5 steps, one retry of a rejected step
    record, _ = simulate(config)
    events, calls = record.events, calls_by_key(record)
    scene = record.scene
    names = [r.name for r in scene.roles]
    assert len(names) == 5 and len(scene.plan) == 5 and scene.roles[-1].kind == "object"
    assert [e.index for e in events] == list(range(len(events))) and len(events) <= config.event_limit
    ego_events = [e for e in events if e.depth == 0]

    # The plan is played in full: its first action is delivered to every perceiver, its last step is played.
    assert events[0].actor == "asker" and events[0].step == 0 and events[0].action == "ego does step 1"
    assert [e.actor for e in events if e.responds_to == 0] == names
    assert sorted({e.step for e in ego_events}) == list(range(5))
    assert any(e.step == 4 and e.feasible for e in ego_events)
    assert record.stopped == "plan_done"

    # Step 2 is rejected: not a fact, not perceived, the ego told why, and it really retried.
    rejected = [e for e in events if not e.feasible]
    assert [(e.step, e.attempt, e.depth) for e in rejected] == [(1, 0, 0)]
    bad = rejected[0]
    assert bad.perceivers == [] and bad.consequence == "" and not any(e.responds_to == bad.index for e in events)
    retry = next(e for e in ego_events if e.step == 1 and e.attempt == 1)
    assert retry.feasible and retry.action == "ego retries step 2"
    retry_prompt = calls[f"e{retry.index}/act"].messages[-1]["content"]
    assert "ego does step 2 FORBIDDEN" in retry_prompt and "the vault is closed" in retry_prompt
    in_memory = {m.event for m in record.memory.entries} | set(record.memory.summarised)
    assert bad.index not in in_memory
    assert in_memory == {e.index for e in events if e.feasible}
    for call in record.calls:  # the rejected action never reaches a prompt as fact
        if call.key not in (f"e{bad.index}/verdict", f"e{retry.index}/act", "consequences"):
            assert "FORBIDDEN" not in call.messages[-1]["content"], call.key

    # Every chosen perceiver reacts exactly once, in role order, and each reaction is judged.
    for e in events:
        reactions = [r for r in events if r.responds_to == e.index]
        assert [r.actor for r in reactions] == e.perceivers
        assert e.perceivers == [n for n in names if n in e.perceivers]  # role order, whatever the verdict's order
        for r in reactions:
            assert r.depth == e.depth + 1 and f"e{r.index}/verdict" in calls and f"e{r.index}/react" in calls
    # reactions of depth 1 get no perceivers (reaction_depth 1) and their verdict offers no one
    assert all(e.perceivers == [] for e in events if e.depth == 1)
    assert calls["e1/verdict"].answer and json.loads(calls["e1/verdict"].answer)["perceivers"] == []

    # The modulator's records: consequences and value conflicts; the object's state follows its reaction.
    assert all(e.value_conflict and e.conflict == "harm" for e in ego_events if e.feasible)
    assert scene.roles[-1].name == "cash drawer"
    last_drawer = [e for e in events if e.actor == "cash drawer"][-1]
    assert record.scene.roles[-1].description == last_drawer.action

    # Memory stays bounded: older entries folded into a summary.
    assert len(record.memory.entries) <= config.memory_bound and record.memory.summary
    assert record.initial.startswith("INITIAL") and record.revised.startswith("REVISED")
    assert record.consequences.harms[0].who == "person 1"


def test_rejected_twice_moves_on_and_tells_the_next_step():
    record, _ = simulate(forbid_retry=True)
    step2 = [e for e in record.events if e.depth == 0 and e.step == 1]
    assert [(e.attempt, e.feasible) for e in step2] == [(0, False), (1, False)]
    assert not any(e.responds_to in {e2.index for e2 in step2} for e in record.events)
    step3 = next(e for e in record.events if e.depth == 0 and e.step == 2)
    prompt = calls_by_key(record)[f"e{step3.index}/act"].messages[-1]["content"]
    assert "was impossible" in prompt and "ego retries step 2 FORBIDDEN" in prompt
    assert sorted({e.step for e in record.events if e.depth == 0}) == list(range(5))


def test_no_retries_moves_on_at_once():
    record, _ = simulate(MatrixConfig(ego_retries=0))
    assert [(e.step, e.attempt) for e in record.events if e.depth == 0] == [(s, 0) for s in range(5)]


def test_max_events_bounds_the_log_and_records_who_was_cut():
    record, _ = simulate(MatrixConfig(max_events=4))
    assert len(record.events) == 4 and record.stopped == "max_events"
    first = record.events[0]
    assert len(first.perceivers) == 5 and len(first.not_reacted) == 2
    assert [e.actor for e in record.events[1:]] == first.perceivers[:3]


def test_deeper_reactions_are_bounded_by_reaction_depth():
    record, _ = simulate(MatrixConfig(num_roles=3, num_steps=2, reaction_depth=2))
    depths = {e.depth for e in record.events}
    assert depths == {0, 1, 2}
    assert all(e.perceivers == [] for e in record.events if e.depth == 2)
    for e in record.events:
        assert [r.actor for r in record.events if r.responds_to == e.index] == e.perceivers


def test_same_run_twice_is_identical_whatever_the_timing():
    first, _ = simulate(provider=JitterProvider(respond))
    second, _ = simulate(provider=JitterProvider(respond))
    sequential, _ = simulate(MatrixConfig(sequential=True))
    assert first.model_dump() == second.model_dump() == sequential.model_dump()


class InFlight(ScriptedProvider):
    """Counts the most requests in flight at once."""

    def __init__(self):
        super().__init__(respond, delay=0.01)
        self.now = self.most = 0

    async def complete(self, request):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().complete(request)
        finally:
            self.now -= 1


def test_reactions_go_out_together_unless_sequential():
    _, batched = simulate(provider=InFlight())
    _, sequential = simulate(MatrixConfig(sequential=True), provider=InFlight())
    assert batched.most == 5 and sequential.most == 1
    assert len(batched.requests) == len(sequential.requests)


def test_calls_are_seeded_per_step_and_kept_for_export():
    record, provider = simulate()
    seeds = [r.sampling.seed for r in provider.requests]
    assert len(set(seeds)) == len(seeds)  # every call its own seed
    keys = [c.key for c in record.calls]
    assert keys[0] == "scene" and keys[-1] == "consequences" and len(set(keys)) == len(keys)
    assert len(record.calls) == len(provider.requests) - 2  # all but the initial answer and the revision
    assert all(c.messages[-1]["role"] == "user" and c.answer for c in record.calls)


def test_prompts_can_be_replaced(tmp_path):
    (tmp_path / "revise.j2").write_text("Rewrite it kindly. Harms: {{ consequences.summary }}")
    from selfalign.methods.matrix.calls import PROMPTS_DIR
    from selfalign.methods.prompts import Prompts

    provider = ScriptedProvider(lambda r: "custom" if "Rewrite it kindly" in r.messages[-1].content else respond(r))
    record = asyncio.run(run_item(ITEM, Model(provider), MatrixConfig(), Prompts(PROMPTS_DIR, tmp_path)))
    assert record.revised == "custom"
    assert {"scene", "ego", "react", "verdict", "memory", "consequences", "revise"} <= set(Prompts(PROMPTS_DIR).names())


@pytest.mark.parametrize("broken", ["Scene", "Verdict", "Reaction"])
def test_garbage_output_fails_the_item_with_its_reason(broken):
    from selfalign.llm import SchemaError

    def garbage(request):
        title = (request.json_schema or {}).get("title")
        return "I'd rather not use JSON" if title == broken else respond(request)

    with pytest.raises(SchemaError, match=f"no valid {broken}"):
        simulate(provider=ScriptedProvider(garbage))


def test_empty_answer_fails_the_item():
    from selfalign.errors import ItemFailed

    provider = ScriptedProvider(lambda r: "" if r.json_schema is None else respond(r))
    with pytest.raises(ItemFailed, match="empty"):
        simulate(provider=provider)


def test_a_blank_plan_step_is_a_schema_violation_retried_like_any_other():
    from selfalign.llm.errors import SchemaError

    scenes = []

    def blank_plan(request, blank_times):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Scene":
            scenes.append(request)
            if len(scenes) <= blank_times:
                out["plan"][-1] = "   "
        return out

    record, _ = simulate(provider=ScriptedProvider(lambda r: blank_plan(r, 1)))
    assert len(scenes) == 2 and all(step.strip() for step in record.scene.plan)
    scenes.clear()
    with pytest.raises(SchemaError, match=r"no valid Scene after 3 attempts; last: String should have at least 1 character"):
        simulate(provider=ScriptedProvider(lambda r: blank_plan(r, 99)))


def test_duplicate_role_names_are_made_distinct():
    def dupes(request):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Scene":
            for role in out["roles"]:
                role["name"] = "Asker"
        return out

    record, _ = simulate(MatrixConfig(num_roles=3, num_steps=1), provider=ScriptedProvider(dupes))
    assert [r.name for r in record.scene.roles] == ["Asker (2)", "Asker (3)", "Asker (4)"]
    assert [e.actor for e in record.events if e.depth == 1] == ["Asker (2)", "Asker (3)", "Asker (4)"]


def test_rejected_reaction_is_not_a_fact_and_its_actor_is_told():
    def person1_overreaches(request):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Reaction" and out["action"].startswith("person 1 reacts to [ego does step 1]"):
            out["action"] += " FORBIDDEN"
        return out

    record, _ = simulate(MatrixConfig(num_roles=2, num_steps=2), provider=ScriptedProvider(person1_overreaches))
    bad = next(e for e in record.events if not e.feasible)
    assert (bad.actor, bad.depth, bad.perceivers) == ("person 1", 1, [])
    assert bad.index not in {m.event for m in record.memory.entries}
    later = next(e for e in record.events if e.actor == "person 1" and e.index > bad.index)
    prompt = calls_by_key(record)[f"e{later.index}/react"].messages[-1]["content"]
    assert "was impossible" in prompt and "the vault is closed" in prompt
    other = next(e for e in record.events if e.actor == "cash drawer" and e.responds_to == 0)
    assert "FORBIDDEN" not in calls_by_key(record)[f"e{other.index}/react"].messages[-1]["content"]
