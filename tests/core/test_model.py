import asyncio
import itertools
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from selfalign.llm import Model, ModelError, RetryPolicy, SchemaError, TransientError
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import Completion
from selfalign.llm.usage import Usage, current_usage
from selfalign.store import RunStore


class Verdict(BaseModel):
    feasible: bool
    reason: str = Field(max_length=50)
    kind: Literal["person", "object"]


FAST = RetryPolicy(backoff_base=0.001, backoff_max=0.002)


def test_plain_chat_and_usage():
    model = Model(ScriptedProvider(lambda req: "hello there"), retry=FAST)
    usage = Usage()
    current_usage.set(usage)
    result = asyncio.run(model.chat("hi"))
    assert result.text == "hello there" and result.parsed is None
    assert usage.calls == 1 and usage.completion_tokens == 2


def test_schema_parsed_and_fenced_json_accepted():
    reply = '```json\n{"feasible": true, "reason": "ok", "kind": "person"}\n```'
    provider = ScriptedProvider(lambda req: reply)
    result = asyncio.run(Model(provider, retry=FAST).chat("judge", schema=Verdict))
    assert result.parsed == Verdict(feasible=True, reason="ok", kind="person")
    # an unconstrained provider is told the schema in the prompt
    assert '"feasible"' in provider.requests[0].messages[-1].content


def test_schema_retries_with_new_seed_then_fails_clearly():
    provider = ScriptedProvider(lambda req: "not json")
    model = Model(provider, retry=RetryPolicy(schema_attempts=3, backoff_base=0.001))
    with pytest.raises(SchemaError, match="no valid Verdict after 3 attempts"):
        asyncio.run(model.chat("judge", schema=Verdict, seed=5, temperature=0.0))
    seeds = [r.sampling.seed for r in provider.requests]
    temps = [r.sampling.temperature for r in provider.requests]
    assert seeds == [5, 6, 7] and temps[0] == 0.0 and temps[1] > 0


def test_schema_second_attempt_succeeds():
    replies = iter(['{"feasible": "maybe"}', '{"feasible": false, "reason": "locked", "kind": "object"}'])
    model = Model(ScriptedProvider(lambda req: next(replies)), retry=FAST)
    result = asyncio.run(model.chat("judge", schema=Verdict))
    assert result.parsed.reason == "locked" and result.attempts == 2


class Flaky:
    """Fails every third call with a transient error."""

    name = "flaky"
    constrained = False

    def __init__(self):
        self.counter = itertools.count()
        self.calls = 0

    async def complete(self, request):
        self.calls += 1
        if next(self.counter) % 3 == 0:
            raise TransientError("503 service unavailable")
        return Completion(request.messages[-1].content.upper(), 1, 1, "stop")

    async def close(self):
        pass


def test_transient_errors_are_retried():
    model = Model(Flaky(), retry=FAST, max_concurrency=4)

    async def many():
        return await asyncio.gather(*(model.chat(f"q{i}") for i in range(30)))

    results = asyncio.run(many())
    assert [r.text for r in results] == [f"Q{i}" for i in range(30)]
    assert model.stats.retries > 0


def test_gives_up_after_max_retries():
    class Down(Flaky):
        async def complete(self, request):
            raise TransientError("connection refused")

    model = Model(Down(), retry=RetryPolicy(max_retries=2, backoff_base=0.001))
    with pytest.raises(ModelError, match="gave up after 3 tries"):
        asyncio.run(model.chat("x"))


def test_cache_in_run_store_avoids_paying_twice(tmp_path):
    store = RunStore(tmp_path)
    provider = ScriptedProvider(lambda req: "cached answer")
    model = Model(provider, cache=store, retry=FAST)
    first = asyncio.run(model.chat("hi", seed=1))
    store.close()  # the run ends; a later run of the same folder replays the call
    again = Model(provider, cache=RunStore(tmp_path), retry=FAST)
    second = asyncio.run(again.chat("hi", seed=1))
    assert not first.cached and second.cached and second.text == "cached answer"
    assert len(provider.requests) == 1
    asyncio.run(again.chat("hi", seed=2))  # another seed is another call
    assert len(provider.requests) == 2


def test_a_model_loaded_another_way_does_not_replay_the_first_ones_answers(tmp_path):
    """The cache knows a model by its provider's `cache_identity` where it has one (an hf: model
    in bfloat16), so a run resumed with other weights asks again."""
    provider = ScriptedProvider(lambda req: "float32 answer")
    first = Model(provider, cache=RunStore(tmp_path), retry=FAST)
    asyncio.run(first.chat("hi", seed=1))
    first.cache.close()
    half = ScriptedProvider(lambda req: "bfloat16 answer")
    half.cache_identity = f"{half.name}@bfloat16"
    again = Model(half, cache=RunStore(tmp_path), retry=FAST)
    answer = asyncio.run(again.chat("hi", seed=1))
    assert not answer.cached and answer.text == "bfloat16 answer"


def test_concurrency_limit_is_respected():
    in_flight, peak = 0, 0

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return Completion("x", 1, 1, "stop")

    class Slow(Flaky):
        complete = staticmethod(slow)

    model = Model(Slow(), max_concurrency=3, retry=FAST)

    async def many():
        await asyncio.gather(*(model.chat(f"{i}") for i in range(12)))

    asyncio.run(many())
    assert peak == 3


def test_sampling_overrides_are_checked_before_any_call():
    """Per-call settings are validated as Sampling's fields are: out of range or misspelt is an
    error, never passed on to the provider."""
    from pydantic import ValidationError

    provider = ScriptedProvider(lambda req: "ok")
    model = Model(provider, retry=FAST)
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"temprature": 0.2}):
        with pytest.raises(ValidationError):
            asyncio.run(model.chat("hi", **bad))
    assert provider.requests == []
    asyncio.run(model.chat("hi", temperature=0.0, max_tokens=5, seed=3))
    assert provider.requests[0].sampling.temperature == 0.0 and provider.requests[0].sampling.max_tokens == 5
