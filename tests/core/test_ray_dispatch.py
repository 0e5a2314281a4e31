"""How the Ray pool (llm/ray_pool.py) hands out calls, without Ray: actors stood in for by
objects whose methods answer, die or raise, so these run in the quick suite. The real thing on
a local Ray instance: tests/ray."""

import asyncio
from types import SimpleNamespace

import pytest

from selfalign.errors import UserError
from selfalign.llm.errors import TransientError
from selfalign.llm.ray_pool import RESENDS, RayPool, _Slot


class Died(Exception):
    """Stands in for Ray's RayActorError: the actor holding the call is gone."""


class TaskError(Exception):
    """Stands in for Ray's RayTaskError: the engine raised `cause` inside the actor."""

    def __init__(self, cause):
        self.cause = cause


class Actor:
    def __init__(self, name, answer=None):
        self.name, self.calls = name, []
        self.answer = answer or (lambda request: f"{name}: {request}")
        self.complete = SimpleNamespace(remote=self._remote)

    async def _remote(self, request):
        self.calls.append(request)
        await asyncio.sleep(0)
        return self.answer(request)


def pool_of(*actors, replacements=()):
    """A RayPool over `actors` whose new actors come from `replacements`, in order."""
    pool = object.__new__(RayPool)
    pool.name, pool.replaced, pool.killed = "hf:m", 0, []
    pool.ray = SimpleNamespace(exceptions=SimpleNamespace(RayTaskError=TaskError),
                               kill=lambda actor, no_restart=False: pool.killed.append(actor))
    pool._lost = (Died,)
    pool._slots = [_Slot(a) for a in actors]
    spare = iter(replacements)
    pool._start = lambda: next(spare)
    return pool


def dies(request):
    raise Died("the node is gone")


def test_calls_go_to_the_least_busy_actor():
    a, b = Actor("a"), Actor("b")
    pool = pool_of(a, b)

    async def main():
        return await asyncio.gather(*(pool.complete(f"q{i}") for i in range(6)))

    answers = asyncio.run(main())
    assert answers == [f"{'ab'[i % 2]}: q{i}" for i in range(6)]  # alternately, as each takes one
    assert len(a.calls) == len(b.calls) == 3
    assert pool.in_flight(a) == pool.in_flight(b) == 0


def test_a_call_whose_actor_died_is_answered_by_its_replacement_and_the_dead_one_is_killed():
    dead, other, new = Actor("dead", dies), Actor("other"), Actor("new")
    pool = pool_of(dead, other, replacements=[new])
    assert asyncio.run(pool.complete("q")) == "new: q"  # sent again to the least busy: the new one
    assert (pool.replaced, pool.killed, pool.actors) == (1, [dead], [new, other])


def test_a_call_whose_actors_keep_dying_is_a_transient_error_the_wrapper_retries():
    pool = pool_of(Actor("a", dies), replacements=[Actor(f"r{i}", dies) for i in range(RESENDS + 1)])
    with pytest.raises(TransientError, match=f"hf:m: the Ray actors holding this call died {RESENDS + 1} times"):
        asyncio.run(pool.complete("q"))
    assert pool.replaced == RESENDS + 1


def test_an_engines_error_is_raised_as_the_engine_raised_it():
    refused = UserError("the prompt is 5001 tokens, and hf:m holds 4096 tokens in all")

    def refuse(request):
        raise TaskError(refused)

    pool = pool_of(Actor("a", refuse))
    with pytest.raises(UserError) as caught:
        asyncio.run(pool.complete("q"))
    assert caught.value is refused and pool.replaced == 0
