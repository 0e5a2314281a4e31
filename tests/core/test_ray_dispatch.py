"""How the Ray pool (llm/ray_pool.py) hands out calls, without Ray: actors stood in for by
objects that take batches (`submit`) and stream their outcomes back (`answers`), answering,
dying or raising, so these run in the quick suite. The real thing on a local Ray instance:
tests/ray."""

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from selfalign.errors import UserError
from selfalign.llm.errors import TransientError
from selfalign.llm.ray_pool import RESENDS, STICKY_SHARE, RayPool, _Slot
from selfalign.llm.ray_wire import pack_outcomes, unpack_calls


class Died(Exception):
    """Stands in for Ray's RayActorError: the actor holding the calls is gone."""


class Actor:
    """Answers each call of a batch with `answer(request)`; an answer that raises Died ends the
    stream as a dead actor's does, any other exception is that call's outcome."""

    def __init__(self, name, answer=None):
        self.name, self.calls, self.batches = name, [], []
        self.answer = answer or (lambda request: f"{name}: {request}")
        self.inbox = asyncio.Queue()
        self.submit = SimpleNamespace(remote=self._submit)
        self.answers = SimpleNamespace(options=lambda **_: SimpleNamespace(remote=self._stream))

    def _submit(self, packed):
        batch = unpack_calls(packed)
        self.batches.append([request for _, _, request in batch])
        self.calls += self.batches[-1]
        self.inbox.put_nowait(batch)

    async def _stream(self):
        while True:
            part = []
            for call_id, _method, request in await self.inbox.get():
                try:
                    part.append((call_id, True, self.answer(request)))
                except Died:
                    raise
                except Exception as exc:  # noqa: BLE001 (the engine's error, for this call alone)
                    part.append((call_id, False, exc))
            yield _ready(pack_outcomes(part))


async def _ready(value):
    return value


def pool_of(*actors, replacements=(), calls_per_actor=4):
    """A RayPool over `actors` whose new actors come from `replacements`, in order."""
    pool = object.__new__(RayPool)
    pool.name = pool.spec = "hf:m"
    pool.replaced, pool.batches, pool.parts, pool.killed = 0, 0, 0, []
    pool.options = SimpleNamespace(calls_per_actor=calls_per_actor)
    pool.ray = SimpleNamespace(kill=lambda actor, no_restart=False: pool.killed.append(actor))
    pool._lost = (Died,)
    pool._slots = [_Slot(a) for a in actors]
    pool._filling, pool._receivers, pool._call_ids = None, {}, itertools.count()
    spare = iter(replacements)
    pool._start = lambda: next(spare)
    return pool


def dies(request):
    raise Died("the node is gone")


def ask(pool, *requests):
    async def main():
        return await asyncio.gather(*(pool.complete(r) for r in requests))

    return asyncio.run(main())


def test_calls_go_to_the_least_busy_actor():
    a, b = Actor("a"), Actor("b")
    pool = pool_of(a, b, calls_per_actor=STICKY_SHARE)  # a batch of one call: each goes to the least busy
    answers = ask(pool, *(f"q{i}" for i in range(6)))
    assert answers == [f"{'ab'[i % 2]}: q{i}" for i in range(6)]  # alternately, as each takes one
    assert len(a.calls) == len(b.calls) == 3
    assert pool.in_flight(a) == pool.in_flight(b) == 0


def test_the_calls_of_one_turn_leave_in_one_batch_per_actor():
    a, b = Actor("a"), Actor("b")
    pool = pool_of(a, b, calls_per_actor=2 * STICKY_SHARE)  # a turn's batch fills up to 2 calls
    answers = ask(pool, *(f"q{i}" for i in range(6)))
    assert [x.split(": ")[1] for x in answers] == [f"q{i}" for i in range(6)]  # each call its own answer
    assert a.batches == [["q0", "q1", "q4"]] and b.batches == [["q2", "q3", "q5"]]
    assert pool.batches == 2 and pool.in_flight(a) == pool.in_flight(b) == 0


def test_a_call_whose_actor_died_is_answered_by_its_replacement_and_the_dead_one_is_killed():
    dead, other, new = Actor("dead", dies), Actor("other"), Actor("new")
    pool = pool_of(dead, other, replacements=[new])
    assert ask(pool, "q") == ["new: q"]  # sent again to the least busy: the new one
    assert (pool.replaced, pool.killed, pool.actors) == (1, [dead], [new, other])


def test_a_call_whose_actors_keep_dying_is_a_transient_error_the_wrapper_retries():
    pool = pool_of(Actor("a", dies), replacements=[Actor(f"r{i}", dies) for i in range(RESENDS + 1)])
    with pytest.raises(TransientError, match=f"hf:m: the Ray actors holding this call died {RESENDS + 1} times"):
        ask(pool, "q")
    assert pool.replaced == RESENDS + 1


def test_an_engines_error_is_raised_as_the_engine_raised_it_and_fails_only_its_call():
    refused = UserError("the prompt is 5001 tokens, and hf:m holds 4096 tokens in all")

    def refuse_long(request):
        if request == "long":
            raise refused
        return f"a: {request}"

    pool = pool_of(Actor("a", refuse_long), calls_per_actor=4 * STICKY_SHARE)

    async def main():
        return await asyncio.gather(pool.complete("long"), pool.complete("short"), return_exceptions=True)

    long, short = asyncio.run(main())
    assert type(long) is UserError and str(long) == str(refused)  # as the engine raised it, across the wire
    assert short == "a: short" and pool.replaced == 0
