"""Model calls spread over a pool of Ray actors, each holding its own engine (`--ray`).

The pool is a provider like any other, behind the one `Model` wrapper: the runner, the methods,
the call cache and the run store stay in the driver, so a run on Ray resumes like a local one,
and a run started on Ray can finish locally and the other way round (the pool takes the engine's
name and traits, so the cache keys and the methods' choices are the same). Each actor loads the
spec's provider (`hf:` or `vllm:`; `scripted:` stands in for one in tests and benchmarks) once
and takes many calls at once, which the engine batches.

A call goes to the actor with the fewest calls in flight, or to the one whose batch is filling
in this turn of the driver's event loop (up to a quarter of the calls an actor takes at once).
The calls queued for one actor in one turn leave as one batch, in one remote call; the actor runs
them with all it holds, and every answer comes back on the actor's one answers stream (a Ray
streaming generator) as it finishes, those that finished together in one part. So the driver
pays Ray's cost per batch and per part, not per call, and the busier it is, the more calls each
carries. An actor that dies (a lost node, an out-of-memory kill) is replaced by a new one and
its calls are sent again, so the items they belong to still finish, each once. What the engine
itself raises reaches the driver as the same exception a local engine raises, so retries and
failed items read as they do locally.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from selfalign.errors import UserError

from .errors import TransientError
from .extras import require
from .ray_wire import pack_calls, pack_outcomes, portable, unpack_calls, unpack_outcomes
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, TextRequest

log = logging.getLogger(__name__)

#: How many times one call is sent again, each time to a live actor, after the actor holding it
#: died; past that the call fails with a TransientError, which the model wrapper retries later.
RESENDS = 2

#: The provider's traits the methods and the call cache read (`Model.completes_text`, prompt
#: formats, attacks' prefills, the cache's name for the model), copied onto the pool so a run on
#: Ray takes the local run's paths and cache keys.
TRAITS = ("name", "cache_identity", "constrained", "chat_format", "continues_final_message", "sampling_fields")

#: Seconds a new pool waits for room freed by actors killed just before.
ROOM_WAIT = 10.0

#: Parts of an actor's answers stream sent ahead of the driver's reading (Ray's backpressure of
#: generators): while the driver is busy, answers gather in the actor, so each part carries
#: more (12 answers a part instead of 6 at 256 simulated engines, benchmarks/results/ray_dispatch.json).
ANSWER_BACKPRESSURE = 1

#: The calls of one turn keep going to one actor until its batch holds `calls_per_actor /
#: STICKY_SHARE`: fewer, larger batches, at a bounded imbalance.
STICKY_SHARE = 4

#: The engine's methods a batch may call.
CALLS = frozenset({"complete", "complete_text", "loglikelihood"})

#: Remote calls one actor takes at once (its answers stream and the batches arriving); its model
#: calls at once are `calls_per_actor`.
BATCHES_AT_ONCE = 1000


@dataclass(frozen=True)
class RayOptions:
    """Where the pool runs and how large it is. `address`: None starts a local Ray instance;
    "auto" or "ray://HOST:PORT" joins an existing cluster."""

    address: str | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    calls_per_actor: int = 256  # in flight in one actor: its engine batches them


class EngineActor:
    """One engine in one Ray actor (made remote by `RayPool`). The driver sends calls in batches
    (`submit`) and reads every answer from one stream (`answers`); the actor runs at most
    `calls_at_once` calls together, which its engine batches."""

    def __init__(self, spec: str, options: dict[str, Any], calls_at_once: int) -> None:
        from .providers import open_provider

        try:
            self.provider, self.load_error = open_provider(spec, **options), None
        except Exception as exc:  # raised by `describe`, so the driver sees the error a local load gives
            self.provider, self.load_error = None, exc
        self._room = asyncio.Semaphore(calls_at_once)
        self._running: set[asyncio.Task[None]] = set()
        self._finished: list[tuple[int, bool, Any]] = []
        self._some_finished = asyncio.Event()

    def describe(self) -> dict[str, Any]:
        if self.load_error is not None:
            raise self.load_error
        p = self.provider
        traits = {t: getattr(p, t) for t in TRAITS if hasattr(p, t)}
        return {**traits, "text": hasattr(p, "complete_text"), "scoring": hasattr(p, "loglikelihood")}

    async def submit(self, calls: bytes) -> None:
        """Start the packed `calls` ((call id, method, request), ray_wire.py); their answers come
        out of `answers`."""
        for call_id, method, request in unpack_calls(calls):
            task = asyncio.ensure_future(self._one(call_id, method, request))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def answers(self) -> AsyncIterator[bytes]:
        """Every call's outcome as it finishes: (call id, True, answer) or (call id, False, the
        engine's exception), those that finished since the last part packed together. The driver reads
        a part before the next is made (backpressure of one), so the busier it is, the more
        answers a part carries, and a slow call never holds a fast one."""
        while True:
            await self._some_finished.wait()
            self._some_finished.clear()
            part, self._finished = self._finished, []
            yield pack_outcomes(part)

    async def _one(self, call_id: int, method: str, request: Any) -> None:
        async with self._room:
            try:
                if method not in CALLS:
                    raise ValueError(f"no engine method {method!r}")
                outcome = (call_id, True, await getattr(self.provider, method)(request))
            except Exception as exc:  # the driver raises it for this call alone, as a local engine would
                outcome = (call_id, False, portable(exc))
        self._finished.append(outcome)
        self._some_finished.set()

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()


@dataclass(eq=False)
class _Slot:
    """One place in the pool: the actor now in it, the calls queued for its next batch (sent at
    the end of this turn of the event loop), and the calls sent to it and not yet answered."""

    actor: Any
    queued: list[tuple[int, str, Any]] = field(default_factory=list)
    waiting: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return len(self.waiting)  # every call queued or sent, until answered


class RayPool:
    """A provider whose calls run in `options.actors` Ray actors, each with the provider of `spec`."""

    def __init__(self, spec: str, options: RayOptions, provider_options: dict[str, Any] | None = None) -> None:
        self.ray = require("ray", "ray")
        if options.actors < 1:
            raise UserError(f"--actors {options.actors}: a pool needs at least one actor")
        self.spec, self.options, self.provider_options = spec, options, dict(provider_options or {})
        _connect(self.ray, spec, options)
        _check_room(self.ray, spec, options)
        self._lost = (self.ray.exceptions.RayActorError, self.ray.exceptions.OutOfMemoryError, _StreamBroke)
        self._actor_class = self.ray.remote(EngineActor).options(
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor,
            max_concurrency=BATCHES_AT_ONCE, max_restarts=0,
        )
        self._slots = [_Slot(self._start()) for _ in range(options.actors)]
        try:
            described = self.ray.get([s.actor.describe.remote() for s in self._slots])
        except self.ray.exceptions.RayTaskError as exc:  # the engine did not load: the error a local load gives
            self._kill_all()
            raise _original(exc) from None
        for trait in TRAITS:
            if trait in described[0]:
                setattr(self, trait, described[0][trait])
        self._capabilities = described[0]
        self._call_ids = itertools.count()
        self._filling: _Slot | None = None  # the actor the last call was queued for
        self._receivers: dict[int, asyncio.Task[None]] = {}  # by id of the slot whose answers it reads
        self.replaced = 0  # actors started again after one died
        self.batches = 0  # remote calls that carried calls to an actor
        self.parts = 0  # parts of the actors' answer streams read (answers that finished together)

    @property
    def actors(self) -> list[Any]:
        """The actors now in the pool."""
        return [s.actor for s in self._slots]

    def in_flight(self, actor: Any) -> int:
        """Calls sent to `actor` and not yet answered."""
        return next((s.in_flight for s in self._slots if s.actor is actor), 0)

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._call("complete", request)

    async def complete_text(self, request: TextRequest) -> Completion:
        if not self._capabilities["text"]:
            raise UserError(f"{self.name} does not complete raw text")
        return await self._call("complete_text", request)

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        if not self._capabilities["scoring"]:
            raise UserError(f"{self.name} cannot score continuations")
        return await self._call("loglikelihood", request)

    async def _call(self, method: str, request: Any) -> Any:
        """Queue for the least busy actor; if that actor dies, it is replaced and the call sent again."""
        for _ in range(RESENDS + 1):
            if not self._slots:
                raise TransientError(f"{self.name}: the Ray pool is closed")
            slot = self._least_busy()
            try:
                return await self._queue(slot, method, request)
            except self._lost as exc:
                lost = exc
        raise TransientError(f"{self.name}: the Ray actors holding this call died {RESENDS + 1} times ({lost})")

    def _least_busy(self) -> _Slot:
        """The actor whose batch is filling in this turn, until it holds `calls_per_actor /
        STICKY_SHARE` calls; then the actor with the fewest calls in flight (so no actor gets
        more than that many calls beyond the least busy, and the driver looks over the actors
        once a batch, not once a call)."""
        filling = self._filling
        if filling is not None and 0 < len(filling.queued) < self.options.calls_per_actor // STICKY_SHARE:
            return filling
        self._filling = least = min(self._slots, key=lambda s: s.in_flight)
        return least

    def _queue(self, slot: _Slot, method: str, request: Any) -> asyncio.Future[Any]:
        """The call's answer-to-be; the calls queued for an actor in one turn of the event loop
        leave together, as one batch."""
        loop = asyncio.get_running_loop()
        receiver = self._receivers.get(id(slot))
        if receiver is None or receiver.get_loop() is not loop:  # the first call on this loop
            self._receive_from(slot)
        if not slot.queued:
            loop.call_soon(self._send, slot)
        call_id = next(self._call_ids)
        slot.queued.append((call_id, method, request))
        slot.waiting[call_id] = answer = loop.create_future()
        return answer

    def _send(self, slot: _Slot) -> None:
        batch, slot.queued = slot.queued, []
        batch = [call for call in batch if not _gave_up(slot, call[0])]
        if batch:
            slot.actor.submit.remote(pack_calls(batch))  # its outcome comes through the answers stream, which sees a dead actor
            self.batches += 1

    def _receive_from(self, slot: _Slot) -> None:
        self._receivers[id(slot)] = asyncio.ensure_future(self._receive(slot, slot.actor))

    async def _receive(self, slot: _Slot, actor: Any) -> None:
        """Hand each answer to its caller as the actor's stream brings it. If the stream breaks,
        every call the actor held is sent again, to a new actor in its place."""
        # A private option of Ray's, which Ray Data sets the same way for its streaming generators.
        stream = actor.answers.options(_generator_backpressure_num_objects=ANSWER_BACKPRESSURE).remote()
        try:
            async for ref in stream:
                part = unpack_outcomes(await ref)
                self.parts += 1
                for call_id, ok, value in part:
                    answer = slot.waiting.pop(call_id, None)
                    if answer is None or answer.done():  # its caller gave up
                        continue
                    if ok:
                        answer.set_result(value)
                    else:
                        answer.set_exception(value)
            raise _StreamBroke("the answers of a Ray actor ended")
        except self._lost as exc:
            self._replace(slot, actor, exc)
        except Exception as exc:  # noqa: BLE001 (the stream broke some other way: the same remedy)
            self._replace(slot, actor, _StreamBroke(f"the answers of a Ray actor broke off: {exc}"))

    def _start(self) -> Any:
        return self._actor_class.remote(self.spec, self.provider_options, self.options.calls_per_actor)

    def _replace(self, slot: _Slot, dead: Any, why: BaseException) -> None:
        """A new actor in the dead one's place; the calls it held fail with `why`, and `_call`
        sends them again."""
        if slot.actor is not dead or not any(s is slot for s in self._slots):
            return
        log.warning("a Ray actor of %s died; starting another in its place", self.name)
        self.ray.kill(dead, no_restart=True)  # an actor that is only unreachable must not come back beside its replacement
        slot.actor = self._start()
        self.replaced += 1
        _fail(slot, why, keep_queued=True)
        self._receive_from(slot)

    async def close(self) -> None:
        receivers = [r for r in self._receivers.values() if r.get_loop() is asyncio.get_running_loop()]
        for receiver in receivers:
            receiver.cancel()
        closing = [s.actor.close.remote() for s in self._slots]
        try:
            await asyncio.gather(*closing, *receivers, return_exceptions=True)
        finally:
            self._kill_all()

    def _kill_all(self) -> None:
        for slot in self._slots:
            self.ray.kill(slot.actor)
            _fail(slot, TransientError(f"{self.spec}: the Ray pool closed with this call unanswered"), keep_queued=False)
        self._slots = []


def _gave_up(slot: _Slot, call_id: int) -> bool:
    """Whether the caller of `call_id` stopped waiting (cancelled) or the call already failed."""
    answer = slot.waiting.get(call_id)
    return answer is None or answer.done()


class _StreamBroke(Exception):
    """An actor's answers stream ended other than by the actor's death; handled as a death."""


def _fail(slot: _Slot, exc: BaseException, *, keep_queued: bool) -> None:
    """Fail the calls `slot`'s actor held, and those queued for it unless `keep_queued` (they go
    to the next actor in its place)."""
    keep = {call_id for call_id, *_ in slot.queued} if keep_queued else set()
    if not keep_queued:
        slot.queued = []
    waiting, slot.waiting = slot.waiting, {}
    for call_id, answer in waiting.items():
        if call_id in keep:
            slot.waiting[call_id] = answer
        elif not answer.done():
            answer.set_exception(exc)


def _connect(ray: Any, spec: str, options: RayOptions) -> None:
    """Join the cluster at `options.address`, or start a local Ray instance with CPUs for the
    pool (Ray's CPUs are a count it schedules by: actors that wait on a model share cores well)."""
    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if options.address is None:
            cpus = max(os.cpu_count() or 1, math.ceil(options.actors * options.cpus_per_actor))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
        else:
            ray.init(address=options.address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at --ray {options.address}" if options.address else "a local Ray instance"
        raise UserError(f"{spec} on Ray: cannot reach {where}: {exc}") from exc


def _check_room(ray: Any, spec: str, options: RayOptions) -> None:
    """Refuse a pool a local Ray instance cannot hold (its actors would wait forever); on a
    cluster, say that they wait (an autoscaler may add the nodes)."""
    need = {"CPU": options.actors * options.cpus_per_actor, "GPU": options.actors * options.gpus_per_actor}
    deadline = time.monotonic() + ROOM_WAIT
    while True:
        free = ray.available_resources()
        short = [f"{n:g} {kind} ({free.get(kind, 0):g} free)" for kind, n in need.items() if n > free.get(kind, 0) + 1e-9]
        if not short:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)  # a pool closed just before (eval: one per model) frees its actors' share soon after
    asked = f"{spec} on Ray: --actors {options.actors} needs {' and '.join(short)}"
    if options.address is None:
        raise UserError(f"{asked} on the local Ray instance: lower --actors, --cpus-per-actor or --gpus-per-actor")
    log.warning("%s on the Ray cluster; the actors wait until it has room", asked)


def _original(exc: BaseException) -> BaseException:
    """The exception raised inside an actor, as a local call would have raised it."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
