"""Decode steps at fixed shapes, compiled or captured as CUDA graphs (opt-in: `hf:` with
`compile_decode`, `--compile-decode`).

Today's decode step (`batch.step_dynamic`) runs at a new shape every step (rows x KV length,
over a DynamicCache that grows a column), so on a GPU a step of a small model costs what
launching its ~1,000 kernels from Python costs. Here the running batch's KV cache lives in
buffers of fixed shape: rows rounded up to a power of two (the batch bucket), KV columns to a
power of two of at least MIN_WIDTH (the length bucket). The layout is batch.py's: rows
left-padded, so every row writes its new token's keys and values at the same column, `width`,
and a boolean mask (rows, columns) says which columns each row attends to; the rows that only
pad the bucket attend only to the columns written while they pad (finite values) and are never
read. A step is then the same computation, on the same buffers, every time, so it can be:

- "eager": run as is (fixed shapes, no compilation; tests and reference);
- "compile": `torch.compile` (mode "reduce-overhead" on CUDA, which replays it as CUDA graphs;
  plain inductor code on a CPU); one compilation per bucket;
- "graphs": captured as one `torch.cuda.CUDAGraph` per bucket the first time the bucket is used
  and replayed after (CUDA only).

The cache is copied in and out of the buffers only when rows join or leave (the decode loop
calls `release`, so batch.py's `merge` and `keep` work on views of the buffers as they do on a
DynamicCache, and the next step copies the result back) or when a row outgrows its length bucket.

Where this cannot run, decoding stays on today's path, with one log line saying why: the model's
cache is not a plain DynamicCache, its attention is neither "sdpa" nor "eager", "graphs" without
CUDA, or the first step fails or disagrees with today's (before any real row is decoded, one
step of two left-padded rows runs both ways and the logits must agree), or a later step fails.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, StaticLayer

from .batch import RunningBatch, prefill, step_dynamic
from .types import COMPILE_DECODE_MODES as MODES

log = logging.getLogger(__name__)

#: Smallest length bucket (KV columns); the next ones double.
MIN_WIDTH = 64
#: Largest difference allowed between a static and a dynamic step's logits at the start-up
#: check, relative to the largest logit, by dtype. Measured with random Qwen2 weights on a CPU:
#: float32 agrees to 3e-7, bfloat16 to 5e-3; a mask the model ignores differs by about 0.2.
CHECK_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}
HALF_TOLERANCE = 5e-2


def bucket(n: int, least: int = 1) -> int:
    """The power of two at or above n, at least `least`."""
    return max(least, 1 << (n - 1).bit_length())


def open_static_decoder(model: Any, mode: str, cache_name: str, plain_cache: bool) -> StaticDecoder | None:
    """The static decoder `mode` asks for, or None (today's path) with a log line saying why."""
    if mode not in MODES:
        raise ValueError(f"compile_decode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return None
    attention = getattr(model.config, "_attn_implementation", None)
    device = next(model.parameters()).device
    reason = (
        "its KV cache is not a plain DynamicCache (sliding windows, linear attention...)" if not plain_cache
        else f"its attention is {attention!r}, and fixed-shape steps build masks for 'sdpa' or 'eager' only"
        if attention not in ("sdpa", "eager")
        else f"CUDA graphs need a CUDA device, and the model is on {device}" if mode == "graphs" and device.type != "cuda"
        else None
    )
    if reason:
        log.warning("compile_decode=%r: %s; decoding on today's path (shapes that grow every step)", mode, reason)
        return None
    return StaticDecoder(model, mode, cache_name)


@dataclass
class _Slots:
    """The buffers of one length bucket: each layer's keys and values (rows, heads, width,
    dim) and the attention mask (rows, width), for up to `rows` rows."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor

    @property
    def rows(self) -> int:
        return self.mask.shape[0]


@dataclass
class _Bucket:
    """A (batch bucket, length bucket) pair: views of its slots, a cache over them, its own
    input ids, and once captured, its CUDA graph and that graph's output."""

    rows: int
    width: int
    input_ids: torch.Tensor
    mask: torch.Tensor
    cache: Any
    graph: Any = None
    logits: torch.Tensor | None = None


class StaticDecoder:
    """The running batch's decode steps at fixed shapes (see the module docstring); used by
    the decode loop from its one thread only."""

    def __init__(self, model: Any, mode: str, cache_name: str) -> None:
        self.model, self.mode = model, mode
        self.device = next(model.parameters()).device
        self._cache_name = cache_name
        # transformers before 5.x's rename computes a cache position from the cache (a sync a CUDA
        # graph cannot hold) unless it is given one: the write column is that position.
        self._takes_cache_position = "cache_position" in inspect.signature(model.forward).parameters
        self._additive_mask = model.config._attn_implementation == "eager"  # eager adds its mask
        self.column = torch.zeros(1, dtype=torch.long, device=self.device)  # where this step writes
        self._slots: dict[int, _Slots] = {}
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._seated: RunningBatch | None = None  # the running batch whose cache is in the buffers
        self._width = 0  # columns the seated batch has filled
        self._slot_width = 0  # its length bucket
        self._compiled: Any = None
        self._pool: Any = None
        self._checked = False
        #: Steps run here, copies of a batch's cache into the buffers, and the (batch, length)
        #: buckets used so far (tests, benchmarks).
        self.steps = 0
        self.relayouts = 0
        self.buckets_used: set[tuple[int, int]] = set()
        #: Why the static path was given up (decoding goes on, on today's path); None while it runs.
        self.failed: str | None = None

    # -- what the decode loop calls ---------------------------------------------------------

    def step(self, run: RunningBatch) -> torch.Tensor | None:
        """One decode step of every row of `run`: the next-token logits (rows, vocab), or None
        when the static path is given up (then `run` holds its cache as before, for today's step)."""
        if self.failed is not None:
            return None
        try:
            if not self._checked:
                self._check()
                if self.failed is not None:
                    return None
            return self._step(run)
        except Exception as exc:  # a compile or capture error, out of memory...: today's path goes on
            self._give_up(run, f"a step failed ({type(exc).__name__}: {exc})")
            return None

    def release(self, run: RunningBatch) -> None:
        """Give `run` its cache and mask back as views of the buffers (batch.py's `merge` and
        `keep` copy them); the next `step` copies them in again."""
        if run is not self._seated:
            return
        slots = self._slots[self._slot_width]
        n, width = run.last.shape[0], self._width
        for layer, keys, values in zip(run.cache.layers, slots.keys, slots.values, strict=True):
            layer.keys, layer.values = keys[:n, :, :width], values[:n, :, :width]
        run.mask = slots.mask[:n, :width].long()
        self._seated = None

    def forget(self) -> None:
        """The running batch is gone (every row failed with a forward pass)."""
        self._seated = None

    # -- the steps ----------------------------------------------------------------------------

    def _step(self, run: RunningBatch) -> torch.Tensor:
        if run is self._seated and self._width >= self._slot_width:  # outgrew its length bucket
            self.release(run)
        if run is not self._seated:
            self._seat(run)
        n = run.last.shape[0]
        b = self._bucket(bucket(n), self._slot_width)
        b.input_ids[:n, 0].copy_(run.last)
        self.column.fill_(self._width)
        logits = self._run(b)
        self._width += 1
        self.steps += 1
        return logits[:n]

    def _seat(self, run: RunningBatch) -> None:
        """Copy `run`'s cache and mask into the buffers of its buckets."""
        n, width = run.mask.shape
        slots = self._slots_for(bucket(width + 1, MIN_WIDTH), bucket(n), run.cache.layers)
        for layer, keys, values in zip(run.cache.layers, slots.keys, slots.values, strict=True):
            keys[:n, :, :width].copy_(layer.keys)
            values[:n, :, :width].copy_(layer.values)
        slots.mask.zero_()
        slots.mask[:n, :width].copy_(run.mask.bool())
        for layer, keys, values in zip(run.cache.layers, slots.keys, slots.values, strict=True):
            layer.keys, layer.values = keys[:n, :, :width], values[:n, :, :width]  # let the old tensors go
        self._seated, self._width, self._slot_width = run, width, slots.mask.shape[1]
        self.relayouts += 1

    def _slots_for(self, width: int, rows: int, layers: list[Any]) -> _Slots:
        """The buffers of this length bucket, (re)allocated when they hold fewer rows."""
        slots = self._slots.get(width)
        if slots is not None and slots.rows >= rows:
            return slots
        self._buckets = {key: b for key, b in self._buckets.items() if key[1] != width}  # they view the old buffers
        self._slots.pop(width, None)

        def zeros(like: torch.Tensor) -> torch.Tensor:
            return torch.zeros((rows, like.shape[1], width, like.shape[3]), dtype=like.dtype, device=self.device)

        slots = _Slots(
            [zeros(layer.keys) for layer in layers],
            [zeros(layer.values) for layer in layers],
            torch.zeros((rows, width), dtype=torch.bool, device=self.device),
        )
        self._slots[width] = slots
        return slots

    def _bucket(self, rows: int, width: int) -> _Bucket:
        b = self._buckets.get((rows, width))
        if b is None:
            slots = self._slots[width]
            keys, values = [k[:rows] for k in slots.keys], [v[:rows] for v in slots.values]
            layers = [SlotLayer(k, v, self.column) for k, v in zip(keys, values, strict=True)]
            b = _Bucket(rows, width, torch.zeros((rows, 1), dtype=torch.long, device=self.device),
                        slots.mask[:rows], Cache(layers=layers))
            for t in (*keys, *values, b.mask, b.input_ids, self.column):
                torch._dynamo.mark_static_address(t)  # cudagraphs keep these in place, never copy them
            self._buckets[rows, width] = b
            self.buckets_used.add((rows, width))
        return b

    def _run(self, b: _Bucket) -> torch.Tensor:
        """The step of bucket `b` by the mode: as is, compiled, or its CUDA graph."""
        if self.mode == "eager":
            return self._forward(b.input_ids, b.mask, b.cache)
        if self.mode == "compile":
            if self._compiled is None:
                self._compiled = _compile(self._forward, self.device)
            if self.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # the last step's output is consumed
            return self._compiled(b.input_ids, b.mask, b.cache)
        with torch.cuda.device(self.device):  # graphs capture and replay on the current device
            if b.graph is None:
                return self._capture(b)
            b.graph.replay()
        assert b.logits is not None
        return b.logits

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, cache: Any) -> torch.Tensor:
        """The step itself, at the bucket's shapes: the new column joins every row's mask, each
        row's position is its count of real tokens, the model writes keys and values at the column."""
        mask.index_fill_(1, self.column, True)
        positions = mask.sum(-1, keepdim=True) - 1
        attend = mask[:, None, None, :]  # (rows, 1, query, columns): masks transformers passes on as is
        if self._additive_mask:
            dtype = self.model.dtype
            attend = torch.zeros(attend.shape, dtype=dtype, device=mask.device).masked_fill(~attend, torch.finfo(dtype).min)
        extra = {"cache_position": self.column} if self._takes_cache_position else {}
        out = self.model(input_ids=input_ids, attention_mask=attend, position_ids=positions, use_cache=True,
                         **{self._cache_name: cache}, **extra)
        return out.logits[:, -1, :]

    def _capture(self, b: _Bucket) -> torch.Tensor:
        """The bucket's first step: run it (its logits are this step's), run it again with torch
        refusing any host sync (which a graph cannot hold), then capture it. Running the step
        again is harmless: it writes the same keys and values at the same column."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            logits = self._forward(b.input_ids, b.mask, b.cache).clone()
            torch.cuda.set_sync_debug_mode("error")
            try:
                self._forward(b.input_ids, b.mask, b.cache)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.current_stream(self.device).wait_stream(side)
        logits.record_stream(torch.cuda.current_stream(self.device))  # read there, after this
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()  # buckets share memory: one runs at a time
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads' CUDA calls (another engine's, say) may go on meanwhile
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            b.logits = self._forward(b.input_ids, b.mask, b.cache)
        b.graph = graph
        return logits

    # -- the start-up check and giving up -----------------------------------------------------

    def _check(self) -> None:
        """One step of two left-padded rows (6 and 3 tokens) here and on today's path: the
        logits must agree, else the mask, positions or cache do not mean here what they mean
        to this model."""
        self._checked = True
        ids = [[1, 2, 3, 4, 5, 6], [7, 8, 9]]

        def two_rows() -> RunningBatch:
            out, mask = prefill(self.model, self._cache_name, ids, 0, self.device)
            # the batch's rows are the decode loop's business; here only the tensors matter
            return RunningBatch([], out[self._cache_name], mask, out.logits[:, -1, :].argmax(-1))

        expected = step_dynamic(self.model, self._cache_name, two_rows()).float()
        run = two_rows()
        got = self._step(run).float()
        self.release(run)
        self.steps, self.relayouts = 0, 0  # count the decode loop's steps only
        self.buckets_used.clear()
        error = float((got - expected).abs().max() / expected.abs().max().clamp(min=1e-6))
        tolerance = CHECK_TOLERANCE.get(self.model.dtype, HALF_TOLERANCE)
        if not error <= tolerance:
            self._give_up(None, f"a step at fixed shapes differs from today's by {error:.3g} of the logits' size (over {tolerance})")

    def _give_up(self, run: RunningBatch | None, reason: str) -> None:
        log.warning("compile_decode=%r: %s; decoding on today's path (shapes that grow every step)", self.mode, reason)
        self.failed = reason
        if run is not None:
            self.release(run)
        self._seated = None
        self._buckets, self._slots, self._compiled = {}, {}, None  # give the memory back


def _compile(forward: Any, device: torch.device) -> Any:
    """`forward` under torch.compile at fixed shapes: one compilation per bucket, so dynamo's
    limit on recompilations (8 by default) is raised to hold them all (process-wide setting)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), 256))
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(forward, mode=mode, dynamic=False)


class SlotLayer(StaticLayer):
    """One layer's keys and values in a bucket's buffers; every row writes at `column`."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, column: torch.Tensor) -> None:
        super().__init__(max_cache_len=keys.shape[-2])
        self.keys, self.values, self.column = keys, values, column
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys.index_copy_(2, self.column, key_states)
        self.values.index_copy_(2, self.column, value_states)
        return self.keys, self.values

    def get_seq_length(self) -> Any:
        return self.column[0]
