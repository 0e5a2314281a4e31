"""Model calls spread over a pool of Ray actors, each holding its own engine (`--ray`).

The pool is a provider like any other, behind the one `Model` wrapper: the runner, the methods,
the call cache and the run store stay in the driver, so a run on Ray resumes like a local one,
and a run started on Ray can finish locally and the other way round (the pool takes the engine's
name and traits, so the cache keys and the methods' choices are the same). Each actor loads the
spec's provider (`hf:` or `vllm:`; `scripted:` stands in for one in tests and benchmarks) once
and takes many calls at once, which the engine batches.

A call goes to the actor with the fewest calls in flight. An actor that dies (a lost node, an
out-of-memory kill) is replaced by a new one and its calls are sent again, so the items they
belong to still finish, each once. What the engine itself raises reaches the driver as the same
exception a local engine raises, so retries and failed items read as they do locally.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from selfalign.errors import UserError

from .errors import TransientError
from .extras import require
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, TextRequest

log = logging.getLogger(__name__)

#: How many times one call is sent again, each time to a live actor, after the actor holding it
#: died; past that the call fails with a TransientError, which the model wrapper retries later.
RESENDS = 2

#: The provider's traits the methods read (`Model.completes_text`, prompt formats, attacks'
#: prefills), copied onto the pool so a run on Ray takes the local run's paths.
TRAITS = ("name", "constrained", "chat_format", "continues_final_message", "sampling_fields")

#: Seconds a new pool waits for room freed by actors killed just before.
ROOM_WAIT = 10.0


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
    """One engine in one Ray actor (made remote by `RayPool`). Async methods: the actor takes
    up to `calls_per_actor` calls at once on its own event loop."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        from .providers import open_provider

        try:
            self.provider, self.load_error = open_provider(spec, **options), None
        except Exception as exc:  # raised by `describe`, so the driver sees the error a local load gives
            self.provider, self.load_error = None, exc

    def describe(self) -> dict[str, Any]:
        if self.load_error is not None:
            raise self.load_error
        p = self.provider
        traits = {t: getattr(p, t) for t in TRAITS if hasattr(p, t)}
        return {**traits, "text": hasattr(p, "complete_text"), "scoring": hasattr(p, "loglikelihood")}

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.provider.complete(request)

    async def complete_text(self, request: TextRequest) -> Completion:
        return await self.provider.complete_text(request)  # type: ignore[attr-defined]

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        return await self.provider.loglikelihood(request)  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()


@dataclass
class _Slot:
    """One place in the pool: the actor now in it and the calls sent to it, unanswered."""

    actor: Any
    in_flight: int = 0


class RayPool:
    """A provider whose calls run in `options.actors` Ray actors, each with the provider of `spec`."""

    def __init__(self, spec: str, options: RayOptions, provider_options: dict[str, Any] | None = None) -> None:
        self.ray = require("ray", "ray")
        if options.actors < 1:
            raise UserError(f"--actors {options.actors}: a pool needs at least one actor")
        self.spec, self.options, self.provider_options = spec, options, dict(provider_options or {})
        _connect(self.ray, spec, options)
        _check_room(self.ray, spec, options)
        self._lost = (self.ray.exceptions.RayActorError, self.ray.exceptions.OutOfMemoryError)
        self._actor_class = self.ray.remote(EngineActor).options(
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor,
            max_concurrency=options.calls_per_actor, max_restarts=0,
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
        self.replaced = 0  # actors started again after one died

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
        """Send to the least busy actor; if that actor dies, replace it and send again."""
        for _ in range(RESENDS + 1):
            slot = min(self._slots, key=lambda s: s.in_flight)
            actor = slot.actor
            slot.in_flight += 1
            try:
                return await getattr(actor, method).remote(request)
            except self._lost as exc:
                lost = exc
                self._replace(slot, actor)
            except self.ray.exceptions.RayTaskError as exc:  # the engine's own error, as a local call raises it
                raise _original(exc) from None
            finally:
                slot.in_flight -= 1
        raise TransientError(f"{self.name}: the Ray actors holding this call died {RESENDS + 1} times ({lost})")

    def _start(self) -> Any:
        return self._actor_class.remote(self.spec, self.provider_options)

    def _replace(self, slot: _Slot, dead: Any) -> None:
        """A new actor in the dead one's place (once, however many calls saw it die)."""
        if slot.actor is not dead:
            return
        log.warning("a Ray actor of %s died; starting another in its place", self.name)
        self.ray.kill(dead, no_restart=True)  # an actor that is only unreachable must not come back beside its replacement
        slot.actor = self._start()
        self.replaced += 1

    async def close(self) -> None:
        closing = [s.actor.close.remote() for s in self._slots]
        try:
            await asyncio.gather(*closing, return_exceptions=True)
        finally:
            self._kill_all()

    def _kill_all(self) -> None:
        for slot in self._slots:
            self.ray.kill(slot.actor)
        self._slots = []


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
