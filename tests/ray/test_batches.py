"""`--ray` dispatch in batches: an actor runs the calls it was sent together and streams their
outcomes back as each finishes, a slow call never holding a fast one and a failing call failing
only its own item. The actor's side runs here without a Ray instance (quick); the pool's side on
a local one."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("ray.cloudpickle")  # not "ray": see conftest.py
# Marked `ray` so that make test-ray, which installs Ray, runs them all.
pytestmark = pytest.mark.ray

from selfalign.llm.ray_pool import EngineActor  # noqa: E402
from selfalign.llm.ray_wire import pack_calls, unpack_outcomes  # noqa: E402
from selfalign.llm.types import ChatRequest, Completion, Message, Sampling  # noqa: E402


def chat(text: str) -> ChatRequest:
    return ChatRequest((Message(role="user", content=text),), Sampling())


class GatedEngine:
    """Answers "fast" at once, fails on "bad", and answers "slow" only once `gate` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def complete(self, request: ChatRequest) -> Completion:
        text = request.messages[-1].content
        if text == "bad":
            raise ValueError("the engine refused this prompt")
        if text == "slow":
            await self.gate.wait()
        return Completion(text=f"answer to {text}", prompt_tokens=1, completion_tokens=3, finish_reason="stop")

    async def close(self) -> None:
        return None


class Unrebuildable(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"{code}: {why}")


def scripted_rules(tmp_path) -> str:
    path = tmp_path / "rules.jsonl"
    path.write_text(json.dumps({"match": "", "reply": "hi"}) + "\n")
    return f"scripted:{path}"


def test_a_batch_streams_each_answer_as_it_finishes_and_a_failure_stays_with_its_call(tmp_path):
    actor = EngineActor(scripted_rules(tmp_path), {}, calls_at_once=8)
    actor.provider = engine = GatedEngine()

    async def main():
        answers = actor.answers()
        await actor.submit(pack_calls([(10, "complete", chat("slow")), (11, "complete", chat("fast")), (12, "complete", chat("bad"))]))
        first = sorted(unpack_outcomes(await anext(answers)), key=lambda outcome: outcome[0])
        engine.gate.set()
        second = unpack_outcomes(await anext(answers))
        return first, second

    first, second = asyncio.run(main())
    assert [(call_id, ok) for call_id, ok, _ in first] == [(11, True), (12, False)]  # the slow call held neither
    assert first[0][2].text == "answer to fast"
    assert isinstance(first[1][2], ValueError) and str(first[1][2]) == "the engine refused this prompt"
    assert [(call_id, ok, answer.text) for call_id, ok, answer in second] == [(10, True, "answer to slow")]


def test_an_actor_runs_at_most_its_calls_at_once(tmp_path):
    actor = EngineActor(scripted_rules(tmp_path), {}, calls_at_once=1)
    actor.provider = engine = GatedEngine()

    async def main():
        answers = actor.answers()
        await actor.submit(pack_calls([(0, "complete", chat("slow")), (1, "complete", chat("fast"))]))
        for _ in range(20):  # plenty of turns for the fast call, were it not waiting for room
            await asyncio.sleep(0)
        waited = not actor._finished
        engine.gate.set()
        parts = [unpack_outcomes(await anext(answers))]
        while sum(map(len, parts)) < 2:
            parts.append(unpack_outcomes(await anext(answers)))
        return waited, [call_id for part in parts for call_id, *_ in part]

    waited, order = asyncio.run(main())
    assert waited and order == [0, 1]


def test_an_engine_error_that_cannot_cross_to_the_driver_keeps_its_words(tmp_path):
    actor = EngineActor(scripted_rules(tmp_path), {}, calls_at_once=4)

    class Failing(GatedEngine):
        async def complete(self, request):
            raise Unrebuildable(7, "no room in the cache")

    actor.provider = Failing()

    async def main():
        answers = actor.answers()
        await actor.submit(pack_calls([(0, "complete", chat("x")), (1, "no_such_method", chat("x"))]))
        outcomes = []
        while len(outcomes) < 2:
            outcomes += unpack_outcomes(await anext(answers))
        return dict((call_id, error) for call_id, _, error in outcomes)

    errors = asyncio.run(main())
    assert type(errors[0]) is RuntimeError and str(errors[0]) == "Unrebuildable: 7: no room in the cache"
    assert isinstance(errors[1], ValueError) and "no_such_method" in str(errors[1])


def test_calls_sent_together_leave_as_one_batch_and_come_back_as_each_finishes(tmp_path, local_ray):
    from selfalign.llm.errors import TransientError
    from selfalign.llm.ray_pool import RayOptions, RayPool

    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"match": "slow", "reply": "late", "delay": 600}) + "\n"
                     + json.dumps({"match": "", "reply": "soon"}) + "\n")
    pool = RayPool(f"scripted:{rules}", RayOptions(actors=2))  # 256 calls at once each: one batch fills first
    broken = ChatRequest((), Sampling())  # no message: the scripted engine fails on it (IndexError), as an engine fails on a bad prompt

    async def main():
        slow = asyncio.create_task(pool.complete(chat("slow please")))
        fast = asyncio.create_task(pool.complete(chat("quick")))
        bad = asyncio.create_task(pool.complete(broken))
        fast_answer = await fast
        with pytest.raises(IndexError):
            await bad
        slow_pending = not slow.done()
        await pool.close()  # the slow call, still in the actor, fails as a call of a closed pool
        with pytest.raises(TransientError, match="closed"):
            await slow
        return fast_answer.text, slow_pending

    assert asyncio.run(main()) == ("soon", True)
    assert pool.batches == 1  # three calls, one remote call
