"""Admission: at most a fixed number of requests answered at once, and a request whose client
hangs up is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable


@dataclass
class Slots:
    """At most `size` requests answered at once; a request waits at most `wait_s` for a slot."""

    size: int
    wait_s: float
    running: int = 0
    waiting: int = 0

    def __post_init__(self) -> None:
        self._free = asyncio.Semaphore(self.size)

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[bool]:
        """Yields whether a slot was had (False: the wait ran out)."""
        self.waiting += 1
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait_s)
        except TimeoutError:
            self.waiting -= 1
            yield False
            return
        self.waiting -= 1
        self.running += 1
        try:
            yield True
        finally:
            self.running -= 1
            self._free.release()


async def until_disconnected(request: Any, work: Awaitable[Any]) -> Any:
    """The result of `work`, or None when the client disconnects first (`work` is then
    cancelled: a generation nobody will read stops, and its rows leave the batch)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # let the cancellation reach the engine
    if task.cancelled():
        return None
    return task.result()


async def _disconnect(request: Any) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
