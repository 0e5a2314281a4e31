"""The continuous-batching engine behind `hf:`: token ids in, completions out.

Concurrent `generate()` calls go into a queue. One background task admits what is queued (up
to `max_batch_size` rows in flight, the first request of an idle engine waiting at most
`batch_wait_ms` for others) into a running batch, which the decode loop (decode_loop.py)
advances step by step over the model's KV cache, in a dedicated thread so the event loop stays
free. A row leaves the batch the step it finishes; requests arriving meanwhile are prefilled and
joined to the running batch at once, so short calls never wait for a long one and the engine
stays busy on mixed-length work. Models whose cache is not a plain `DynamicCache` (sliding
windows, linear attention...) fall back to one `model.generate` call per batch. With
`compile_decode` the decode steps run at fixed shapes, compiled or as CUDA graphs
(static_decode.py); the default runs them at the shapes of the moment.

Every setting of a row is applied per row (see `decoding.py`): temperature, top_p and seed
through a seeded Gumbel-max sampler, max_tokens and stop strings through a per-row stop check,
a grammar through its own xgrammar matcher. So any rows can share a batch, and a row gives the
same text alone or batched with others (up to the float noise of padding).

Decoding is fair: when new requests wait and the batch is full, a row that has had
`decode_loop.PREEMPT_AFTER` tokens steps aside for them and rejoins later as if never paused;
so a new request starts after at most PREEMPT_AFTER steps, however long the answers being
decoded. A request whose caller is gone (cancelled: a client that hung up) leaves the batch at
the next step. `close()` stops the decode loop within one step.

Other forward passes on the same model (scoring log-likelihoods, see `scoring.py`) go through
`run_exclusive`: they run in the engine's thread after the decode loop's current step, so they
never race the batch for the device, and decoding goes on after them where it stopped.

transformers' own continuous batching has no per-request seeds, stop strings or grammars, hence
this loop. It reads the cache's layers (batch.py): the transformers versions it is tested with
are pinned in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import torch

from .batch import Pending, Row, RunningBatch
from .decode_loop import DecodeLoop, forward_mode
from .errors import ModelError, TransientError
from .types import Completion

__all__ = ["BatchEngine", "Row"]

T = TypeVar("T")


class BatchEngine:
    """Decodes the rows of concurrent `generate()` calls together, on one model and device.

    Args:
        model: a transformers causal LM, already on its device and in eval mode.
        tokenizer: its tokenizer (decodes the output and checks stop strings).
        eos_token_ids: every token that ends a row; the first is the one a finished grammar emits.
        pad_token_id: any id; padding is masked out.
        max_batch_size: most rows decoded together.
        batch_wait_ms: how long the first request to an idle engine waits for others to join.
        name: how errors name the engine (the provider's spec).
        compile_decode: "off" (today's decode steps), or decode steps at fixed shapes: "eager",
            "compile" (torch.compile) or "graphs" (CUDA graphs); see static_decode.py.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        eos_token_ids: list[int],
        pad_token_id: int,
        max_batch_size: int = 32,
        batch_wait_ms: float = 5,
        name: str = "engine",
        compile_decode: str = "off",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.pad_token_id = pad_token_id
        self.batch_wait_s = batch_wait_ms / 1000
        self.name = name
        self._jobs_waiting = 0  # run_exclusive jobs queued behind the decode loop
        self._jobs_lock = threading.Lock()
        self.decoder = DecodeLoop(
            model, tokenizer, eos_token_ids=eos_token_ids, pad_token_id=pad_token_id,
            max_batch_size=max_batch_size, jobs_waiting=lambda: self._jobs_waiting > 0,
            compile_decode=compile_decode,
        )
        # One thread: forward passes run one after another, never racing for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfalign-engine")
        self._queue: asyncio.Queue[Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._active: list[Pending] = []  # the running batch's requests, as the async side last saw them

    @property
    def continuous(self) -> bool:
        """Our own decode loop; False: one `model.generate` per batch (benchmarks set it)."""
        return self.decoder.continuous

    @continuous.setter
    def continuous(self, value: bool) -> None:
        self.decoder.continuous = value

    @property
    def max_batch_size(self) -> int:
        """Most rows decoded together."""
        return self.decoder.max_batch_size

    @max_batch_size.setter
    def max_batch_size(self, value: int) -> None:
        self.decoder.max_batch_size = value

    @property
    def generate_calls(self) -> int:
        """Prefill (or generate) calls run so far, each admitting the requests queued together."""
        return self.decoder.generate_calls

    @property
    def generated_rows(self) -> int:
        """The rows those calls held."""
        return self.decoder.generated_rows

    @property
    def preemptions(self) -> int:
        """Rows that stepped aside for waiting requests so far (see decode_loop.PREEMPT_AFTER)."""
        return self.decoder.preemptions

    @property
    def _running(self) -> RunningBatch | None:  # the decode thread's batch (tests read a snapshot)
        return self.decoder.running

    # -- the async side: queue and batching worker ------------------------------------------

    async def generate(self, row: Row, on_token: Callable[[int], None] | None = None) -> Completion:
        """Queue the row and wait for the step that finishes it. `on_token` is called on this
        event loop with each token the row chooses, before the row's completion is returned."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        loop = asyncio.get_running_loop()
        queue = self._ensure_worker(loop)
        future: asyncio.Future[Completion] = loop.create_future()
        queue.put_nowait(Pending(row, future, None if on_token is None else _on_loop(loop, on_token)))
        self.decoder.arrived.set()
        return await future

    async def run_exclusive(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in the engine's thread under inference mode, between two decoding steps
        (the decode loop yields after its current step), so its forward passes (scoring) never
        race the batch's for the device."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")

        def job() -> T:
            with self._jobs_lock:
                self._jobs_waiting -= 1
            with forward_mode():
                return fn()

        with self._jobs_lock:
            self._jobs_waiting += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Pending]:
        # The queue and worker belong to one event loop; an engine reused under a new loop
        # (e.g. two asyncio.run calls) starts a fresh pair there.
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue), name=f"{self.name} batcher")
        assert self._queue is not None
        return self._queue

    async def _serve(self, queue: asyncio.Queue[Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._active or self.decoder.paused:  # the engine runs: admit what is queued now, without waiting
                room = self.max_batch_size - len(self._active)
                admit = [queue.get_nowait() for _ in range(min(room, queue.qsize()))]
            else:
                admit = await self._collect(queue)
            admit = [p for p in admit if not p.future.done()]  # callers may have given up
            if not admit and not self._active and not self.decoder.paused:
                continue
            if queue.empty():  # else it stays set, and the decode loop makes room
                self.decoder.arrived.clear()
            try:
                finished = await loop.run_in_executor(self._executor, self.decoder.advance, admit)
            except asyncio.CancelledError:
                _fail(self._in_flight(admit), ModelError(f"{self.name}: the provider was closed during the call"))
                raise
            except Exception as exc:  # a forward pass failed: every row in flight fails
                _fail(self._in_flight(admit), _forward_error(self.name, exc))
                self.decoder.reset()
                self._active = []
                continue
            for pending, result in finished:
                if not pending.future.done():
                    pending.future.set_result(result)
            running = self.decoder.running
            self._active = [] if running is None else [live.pending for live in running.rows]

    def _in_flight(self, admit: list[Pending]) -> list[Pending]:
        return [*self._active, *admit, *(live.pending for live in self.decoder.paused)]

    async def _collect(self, queue: asyncio.Queue[Pending]) -> list[Pending]:
        """The first queued request, plus those arriving within batch_wait_s, up to the max."""
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            if not queue.empty():  # requests that queued up while the last batch ran
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def close(self) -> None:
        """Stop the worker, fail what is queued, let go of the model."""
        self._closed = self.decoder.closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _fail([self._queue.get_nowait()], ModelError(f"{self.name}: the provider is closed"))
        _fail([live.pending for live in self.decoder.paused], ModelError(f"{self.name}: the provider is closed"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.model = self.decoder.model = self.decoder.static = None  # drop our references so the weights can be freed


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[int], None]) -> Callable[[int], None]:
    """`fn` called on `loop` from the decode thread, in order: the tokens of a step reach the
    loop before the answers that step finished (they come back through the same queue)."""

    def call(token: int) -> None:
        if not loop.is_closed():  # a loop that ended under a row: nobody reads its tokens
            loop.call_soon_threadsafe(fn, token)

    return call


def _fail(batch: list[Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _forward_error(name: str, exc: Exception) -> Exception:
    """Out of memory may pass with a smaller batch on retry; anything else is for good."""
    if isinstance(exc, torch.OutOfMemoryError):
        return TransientError(f"{name}: out of GPU memory in a batched forward pass ({exc}); lower max_batch_size if this repeats")
    return ModelError(f"{name}: generate failed: {type(exc).__name__}: {exc}")
