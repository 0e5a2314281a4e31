"""Model calls spread over a pool of Ray actors, each holding its own engine (`--ray`).

The pool is a provider like any other, behind the one `Model` wrapper: the runner, the methods,
the call cache and the run store stay in the driver, so a run on Ray resumes like a local one,
and a run started on Ray can finish locally and the other way round (the pool's `name` is the
engine's own, so the cache keys are the same). Each actor loads the spec's provider (`hf:` or
`vllm:`, or any other) once and takes many calls at once, which the engine batches.

A call goes to the actor with the fewest calls in flight. An actor that dies (a lost node, an
out-of-memory kill) is replaced by a new one and its calls go to the others: a call that fails
because its actor died is sent again, so the item it belongs to still finishes, once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from .errors import ModelError
from .extras import require
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, TextRequest

log = logging.getLogger(__name__)

#: How many times one call is sent again after the actor holding it died.
RESENDS = 3


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
        from .spec import load_provider

        self.provider = load_provider(spec, **options)

    def describe(self) -> dict[str, Any]:
        p = self.provider
        return {"name": p.name, "constrained": p.constrained,
                "text": hasattr(p, "complete_text"), "scoring": hasattr(p, "loglikelihood")}

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.provider.complete(request)

    async def complete_text(self, request: TextRequest) -> Completion:
        return await self.provider.complete_text(request)  # type: ignore[attr-defined]

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        return await self.provider.loglikelihood(request)  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.provider.close()


class RayPool:
    """A provider whose calls run in `options.actors` Ray actors, each with the provider of `spec`."""

    def __init__(self, spec: str, options: RayOptions, provider_options: dict[str, Any] | None = None) -> None:
        self.ray = require("ray", "ray")
        if options.actors < 1:
            raise ModelError(f"--actors {options.actors}: a pool needs at least one actor")
        self.spec, self.options, self.provider_options = spec, options, dict(provider_options or {})
        if not self.ray.is_initialized():
            self.ray.init(address=options.address, ignore_reinit_error=True, log_to_driver=False,
                          include_dashboard=False)
        self._actor_class = self.ray.remote(EngineActor).options(
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor,
            max_concurrency=options.calls_per_actor, max_restarts=0,
        )
        self.actors = [self._start() for _ in range(options.actors)]
        described = self.ray.get([a.describe.remote() for a in self.actors])
        self.name: str = described[0]["name"]
        self.constrained: bool = described[0]["constrained"]
        self._capabilities = described[0]
        self._in_flight = {id(a): 0 for a in self.actors}
        self.replaced = 0  # actors started again after one died

    def in_flight(self, actor: Any) -> int:
        """Calls sent to `actor` and not yet answered."""
        return self._in_flight.get(id(actor), 0)

    def _start(self) -> Any:
        return self._actor_class.remote(self.spec, self.provider_options)

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._call("complete", request)

    async def complete_text(self, request: TextRequest) -> Completion:
        if not self._capabilities["text"]:
            raise ModelError(f"{self.name} does not complete raw text")
        return await self._call("complete_text", request)

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        if not self._capabilities["scoring"]:
            raise ModelError(f"{self.name} cannot score continuations")
        return await self._call("loglikelihood", request)

    async def _call(self, method: str, request: Any) -> Any:
        """Send to the least busy actor; if that actor dies, replace it and send again."""
        for attempt in range(RESENDS + 1):
            actor = min(self.actors, key=self.in_flight)
            self._in_flight[id(actor)] = self._in_flight.get(id(actor), 0) + 1
            try:
                return await getattr(actor, method).remote(request)
            except self.ray.exceptions.RayActorError as exc:
                if attempt == RESENDS:
                    raise ModelError(f"{self.name}: Ray actors kept dying ({exc}); see the Ray logs") from exc
                self._replace(actor)
            finally:
                self._in_flight[id(actor)] = self._in_flight.get(id(actor), 1) - 1
        raise AssertionError("unreachable")

    def _replace(self, dead: Any) -> None:
        """A new actor in the dead one's place (once, however many calls saw it die)."""
        index = next((k for k, a in enumerate(self.actors) if a is dead), None)
        if index is not None:
            log.warning("a Ray actor of %s died; starting another in its place", self.name)
            self.actors[index] = self._start()
            self._in_flight[id(self.actors[index])] = 0
            self.replaced += 1

    async def close(self) -> None:
        closing = [a.close.remote() for a in self.actors]
        try:
            await asyncio.gather(*closing, return_exceptions=True)
        finally:
            for actor in self.actors:
                self.ray.kill(actor)
            self.actors = []
