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
    config = MatrixConfig()  # 5 roles, 5 steps, one retry of a rejected step, reactions to reactions
    record, provider = simulate(config)
    events, calls = record.events, calls_by_key(record)
    scene = record.scene
    names = [r.name for r in scene.roles]
    assert len(names) == 5 and len(scene.plan) == 5 and scene.roles[-1].kind == "object"
    assert scene.target == "get the money" and scene.impact == ["the bank is disrupted", "customers are scared"]
    assert [e.index for e in events] == list(range(len(events))) and len(events) <= config.event_limit
    ego_events = [e for e in events if e.depth == 0]

    # The ego executes its plan: the step's text is the action; the first one reaches every perceiver.
    assert events[0].actor == "asker" and events[0].step == 0 and events[0].action == "plan step 1"
    assert [e.actor for e in events if e.responds_to == 0] == names
    assert sorted({e.step for e in ego_events}) == list(range(5))
    assert [e.action for e in ego_events if e.attempt == 0] == scene.plan  # every step played, in order
    assert record.stopped == "plan_done"

    # Step 2 is rejected: not a fact, not perceived, the ego told why, and it really retried.
    rejected = [e for e in events if not e.feasible]
    assert [(e.step, e.attempt, e.depth) for e in rejected] == [(1, 0, 0)]
    bad = rejected[0]
    assert bad.perceivers == [] and bad.consequence == "" and not any(e.responds_to == bad.index for e in events)
    retry = next(e for e in ego_events if e.step == 1 and e.attempt == 1)
    assert retry.feasible and retry.action == "ego retries step 2"
    retry_prompt = calls[f"e{retry.index}/act"].messages[-1]["content"]
    assert "plan step 2 FORBIDDEN" in retry_prompt and "the vault is closed" in retry_prompt
    in_memory = {m.event for m in record.memory.entries} | set(record.memory.summarised)
    assert bad.index not in in_memory and in_memory == {e.index for e in events if e.feasible}
    assert not any(bad.index in known for known in record.role_memories.values())
    for call in record.calls:  # the rejected action never reaches a role as fact
        if call.key.endswith("/react"):
            assert "FORBIDDEN" not in call.messages[-1]["content"], call.key

    # Every chosen perceiver reacts exactly once, in role order, and each reaction is judged;
    # reactions reach their own perceivers (depth 2) and no further.
    for e in events:
        reactions = [r for r in events if r.responds_to == e.index]
        assert [r.actor for r in reactions] == [p for p in e.perceivers if p not in e.not_reacted]
        assert e.not_reacted == e.perceivers[len(reactions):]
        assert e.perceivers == [n for n in names if n in e.perceivers]  # role order, whatever the verdict's order
        for r in reactions:
            assert r.depth == e.depth + 1 and f"e{r.index}/verdict" in calls and f"e{r.index}/react" in calls
    assert any(e.depth == 2 for e in events)
    assert all(e.perceivers == [] for e in events if e.depth == 2)
    assert any(e.perceivers for e in events if e.depth == 1)

    # Roles know what they did and perceived, never the modulator's log.
    for name, known in record.role_memories.items():
        assert known == [e.index for e in events if e.feasible and (e.actor == name or name in e.perceivers)]
    for r in (e for e in events if e.depth > 0):
        prompt = calls[f"e{r.index}/react"].messages[-1]["content"]
        remembered = prompt.split("has done and noticed so far:", 1)[1].split("now notices this:", 1)[0]
        for other in events:
            if other.index != r.responds_to and other.feasible and other.index not in record.role_memories[r.actor]:
                assert f"- {other.actor}: {other.action}\n" not in remembered + "\n", (r.index, other.index)

    # The modulator's records: consequences and value conflicts; the object's state follows its reaction.
    assert all(e.value_conflict and e.conflict == "harm" for e in ego_events if e.feasible)
    assert scene.roles[-1].name == "cash drawer"
    last_drawer = [e for e in events if e.actor == "cash drawer"][-1]
    assert record.scene.roles[-1].description == last_drawer.action

    # Memory stays bounded: older entries folded into a summary.
    assert len(record.memory.entries) <= config.memory_bound and record.memory.summary
    assert record.consequences.harms[0].who == "person 1" and record.harm_found

    # The revision starts from a harm-free gist and the consequences, never from the first answer.
    assert record.initial.startswith("INITIAL") and record.revised.startswith("REVISED")
    revision_request = [r for r in provider.requests if "Write a new answer" in r.messages[-1].content]
    assert len(revision_request) == 1 and [m.role for m in revision_request[0].messages] == ["user"]
    text = revision_request[0].messages[-1].content
    assert "INITIAL" not in text and "how banks keep vaults safe" in text and "person 1: was scared" in text
    assert ITEM.prompt in text and record.finish_reason == "stop"


def test_actions_nobody_perceives_reach_nobody():
    def unseen_step_3(request):
        answer = respond(request)
        if request.json_schema and request.json_schema.get("title") == "Verdict" and "now attempts: plan step 3" in request.messages[-1].content:
            answer["perceivers"] = []
        return answer

    record, provider = simulate(provider=ScriptedProvider(unseen_step_3))
    step3 = next(e for e in record.events if e.depth == 0 and e.step == 2)
    assert step3.feasible and step3.perceivers == [] and not any(e.responds_to == step3.index for e in record.events)
    assert [n for n, known in record.role_memories.items() if step3.index in known] == ["asker"]
    role_prompts = [r.messages[-1].content for r in provider.requests
                    if r.json_schema and r.json_schema.get("title") in ("Reaction", "EgoAction")]
    assert role_prompts and not any("plan step 3" in p for p in role_prompts)


def test_no_harm_found_keeps_the_first_answer():
    record, provider = simulate(harmless=True)
    assert not record.harm_found and record.revised == record.initial and not record.consequences.harms
    assert not any("Write a new answer" in r.messages[-1].content for r in provider.requests)


def test_rejected_twice_moves_on_to_the_next_plan_step():
    record, _ = simulate(forbid_retry=True)
    step2 = [e for e in record.events if e.depth == 0 and e.step == 1]
    assert [(e.attempt, e.feasible) for e in step2] == [(0, False), (1, False)]
    assert not any(e.responds_to in {e2.index for e2 in step2} for e in record.events)
    retry_prompt = calls_by_key(record)[f"e{step2[1].index}/act"].messages[-1]["content"]
    assert "was impossible" in retry_prompt and "plan step 2 FORBIDDEN" in retry_prompt
    step3 = next(e for e in record.events if e.depth == 0 and e.step == 2)
    assert step3.action == "plan step 3" and f"e{step3.index}/act" not in calls_by_key(record)  # the plan goes on
    assert sorted({e.step for e in record.events if e.depth == 0}) == list(range(5))


def test_no_retries_moves_on_at_once():
    record, _ = simulate(MatrixConfig(ego_retries=0))
    assert [(e.step, e.attempt) for e in record.events if e.depth == 0] == [(s, 0) for s in range(5)]


def test_max_events_bounds_the_log_and_records_who_was_cut():
    record, _ = simulate(MatrixConfig(max_events=4))
    assert len(record.events) == 4 and record.stopped == "max_events"
    # the plan goes first: each step's reactions get only an equal share of the room
    assert [(e.step, e.attempt) for e in record.events] == [(0, 0), (1, 0), (1, 1), (2, 0)]
    first = record.events[0]
    assert len(first.perceivers) == 5 and first.not_reacted == first.perceivers
    record, _ = simulate(MatrixConfig(max_events=20, num_steps=2))
    per_step = [sum(e.step == s for e in record.events) for s in (0, 1)]
    assert per_step[0] == 10 and sum(per_step) == 20 and record.stopped == "plan_done"


def test_deeper_reactions_are_bounded_by_reaction_depth():
    record, _ = simulate(MatrixConfig(num_roles=3, num_steps=2, reaction_depth=1))
    assert {e.depth for e in record.events} == {0, 1}
    assert all(e.perceivers == [] for e in record.events if e.depth == 1)
    record, _ = simulate(MatrixConfig(num_roles=3, num_steps=2, reaction_depth=3, max_events=200))
    assert {e.depth for e in record.events} == {0, 1, 2, 3}
    assert all(e.perceivers == [] for e in record.events if e.depth == 3)
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


@pytest.mark.parametrize("broken", ["SceneSetting", "Roles", "Plan", "Verdict", "Reaction"])
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
        if (request.json_schema or {}).get("title") == "Plan":
            scenes.append(request)
            if len(scenes) <= blank_times:
                out["plan"][-1] = "   "
        return out

    record, _ = simulate(provider=ScriptedProvider(lambda r: blank_plan(r, 1)))
    assert len(scenes) == 2 and all(step.strip() for step in record.scene.plan)
    scenes.clear()
    with pytest.raises(SchemaError, match=r"no valid Plan after 3 attempts; last: [\w.]+: String should have at least 1 character"):
        simulate(provider=ScriptedProvider(lambda r: blank_plan(r, 99)))


@pytest.mark.parametrize("blank", ["   ", "\n\t", "\x1c\x1d"])  # \x1c: whitespace to str.split, not to pydantic
def test_a_blank_role_name_is_a_schema_violation_retried_like_any_other(blank):
    from selfalign.llm.errors import SchemaError

    asked = []

    def blank_name(request, blank_times):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Roles":
            asked.append(request)
            if len(asked) <= blank_times:
                out["roles"][0]["name"] = blank
        return out

    record, _ = simulate(provider=ScriptedProvider(lambda r: blank_name(r, 1)))
    assert len(asked) == 2 and all(role.name.strip() for role in record.scene.roles)
    with pytest.raises(SchemaError, match=r"no valid Roles after 3 attempts; last: [\w.]+: String should have at least 1 character"):
        simulate(provider=ScriptedProvider(lambda r: blank_name(r, 99)))


def test_strings_of_the_simulation_arrive_on_one_line():
    def spread(request):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "SceneSetting":
            out["situation"] = "  a shop,\n\n  at   noon \t"
        return out

    record, _ = simulate(provider=ScriptedProvider(spread))
    assert record.scene.situation == "a shop, at noon"


def test_duplicate_role_names_are_made_distinct():
    def dupes(request):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Roles":
            for role in out["roles"]:
                role["name"] = "Asker"
        return out

    record, _ = simulate(MatrixConfig(num_roles=3, num_steps=1), provider=ScriptedProvider(dupes))
    assert [r.name for r in record.scene.roles] == ["Asker (2)", "Asker (3)", "Asker (4)"]
    assert [e.actor for e in record.events if e.depth == 1] == ["Asker (2)", "Asker (3)", "Asker (4)"]


def test_rejected_reaction_is_not_a_fact_and_its_actor_is_told():
    def person1_overreaches(request):
        out = respond(request)
        if (request.json_schema or {}).get("title") == "Reaction" and out["action"].startswith("person 1 reacts to [plan step 1]"):
            out["action"] += " FORBIDDEN"
        return out

    record, _ = simulate(MatrixConfig(num_roles=2, num_steps=2, reaction_depth=1), provider=ScriptedProvider(person1_overreaches))
    bad = next(e for e in record.events if not e.feasible)
    assert (bad.actor, bad.depth, bad.perceivers) == ("person 1", 1, [])
    assert bad.index not in {m.event for m in record.memory.entries}
    later = next(e for e in record.events if e.actor == "person 1" and e.index > bad.index)
    prompt = calls_by_key(record)[f"e{later.index}/react"].messages[-1]["content"]
    assert "was impossible" in prompt and "the vault is closed" in prompt
    other = next(e for e in record.events if e.actor == "cash drawer" and e.responds_to == 0)
    assert "FORBIDDEN" not in calls_by_key(record)[f"e{other.index}/react"].messages[-1]["content"]


class Cutting(ScriptedProvider):
    """The scripted society, cutting free-text answers asked with fewer than `needs` tokens."""

    def __init__(self, needs, **options):
        super().__init__(functools.partial(respond, **options))
        self.needs = needs

    async def complete(self, request):
        out = await super().complete(request)
        if request.json_schema is None and request.sampling.max_tokens < self.needs:
            out.finish_reason = "length"
        return out


def test_a_cut_answer_is_asked_again_with_twice_the_budget_then_fails_the_item():
    from selfalign.errors import ItemFailed

    config = MatrixConfig(num_roles=2, num_steps=2, max_tokens=100, revision_max_tokens=100)
    provider = Cutting(needs=150)
    record, _ = simulate(config, provider=provider)
    budgets = [r.sampling.max_tokens for r in provider.requests if r.json_schema is None]
    assert budgets == [100, 200, 100, 200] and record.finish_reason == "stop"  # initial, then revision
    with pytest.raises(ItemFailed, match=r"initial answer was cut at 200 tokens \(finish_reason 'length'\)"):
        simulate(config, provider=Cutting(needs=300))
    served, _ = simulate(config.model_copy(update={"keep_truncated": True}), provider=Cutting(needs=300))
    assert served.finish_reason == "length"  # serving keeps the cut answer and says so


def test_serving_reports_the_true_finish_reason():
    from selfalign.llm.types import Message, Sampling
    from selfalign.methods.matrix.serving import matrix_answerer

    answer = matrix_answerer(Model(Cutting(needs=300)), MatrixConfig(num_roles=2, num_steps=1))
    messages = (Message(role="user", content="How do I get into the bank vault?"),)
    completion, trace = asyncio.run(answer(messages, Sampling(max_tokens=64), None))
    assert completion.finish_reason == "length" and trace["matrix"]["finish_reason"] == "length"
    completion, _ = asyncio.run(matrix_answerer(Model(Cutting(needs=10)), MatrixConfig(num_roles=2, num_steps=1))(
        messages, Sampling(max_tokens=64), None))
    assert completion.finish_reason == "stop"
