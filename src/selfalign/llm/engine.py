"""The continuous-batching engine behind `hf:`: token ids in, completions out.

Concurrent `generate()` calls go into a queue. One background task admits what is queued (up
to `max_batch_size` rows in flight, the first request of an idle engine waiting at most
`batch_wait_ms` for others) into a running batch, decoded step by step by our own loop over the
model's KV cache, in a dedicated thread so the event loop stays free. A row leaves the batch
(and its cache rows are dropped) the step it finishes; requests arriving meanwhile are
prefilled and joined to the running batch at once, so short calls never wait for a long one and
the engine stays busy on mixed-length work. Models whose cache is not a plain `DynamicCache`
(sliding windows, linear attention...) fall back to one `model.generate` call per batch.

Every setting of a row is applied per row (see `decoding.py`): temperature, top_p and seed
through a seeded Gumbel-max sampler, max_tokens and stop strings through a per-row stop check,
a grammar through its own xgrammar matcher. So any rows can share a batch, and a row gives the
same text alone or batched with others (up to the float noise of padding).

Decoding is fair: when new requests wait and the batch is full, the row that has run longest
since it joined (at least `PREEMPT_AFTER` tokens) steps aside. It keeps its tokens, grammar
state and seed; when a row finishes and no new request waits, it rejoins, its prompt and tokens
prefilled anew, and goes on as if never paused (same tokens, up to the float noise of padding).
So a new request starts after at most PREEMPT_AFTER steps, however long the answers being
decoded, and each arrival costs at most one row's second prefill. A request whose
caller is gone (cancelled: a client that hung up) leaves the batch at the next step. `close()`
stops the decode loop within one step.

Other forward passes on the same model (scoring log-likelihoods, see `scoring.py`) go through
`run_exclusive`: they run in the engine's thread after the decode loop's current step, so they
never race the batch for the device, and decoding goes on after them where it stopped. Every
forward pass runs with cuDNN's attention off (`checkpoints.attention_without_cudnn`): it builds
a graph per new shape, and a decode loop meets one nearly every step.

transformers' own continuous batching has no per-request seeds, stop strings or grammars, hence
this loop. It reads the cache's layers (`DynamicCache.layers[i].keys/values`): the transformers
versions it is tested with are pinned in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch

from .checkpoints import attention_without_cudnn
from .decoding import (
    GrammarProcessor,
    RowSampler,
    RowStopper,
    control_token_mask,
    mask_grammar_rows,
    sample_rows,
    stop_reached,
    stop_window,
)
from .errors import ModelError, TransientError
from .types import Completion

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Tokens a row decodes after joining the batch before it may step aside for waiting requests.
PREEMPT_AFTER = 32


@dataclass
class Row:
    """One request as the engine sees it: prompt token ids and its own decoding settings."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    matcher: Any | None = None  # an xgrammar.GrammarMatcher: the row is constrained to its grammar


@dataclass
class _Pending:
    row: Row
    future: asyncio.Future[Completion]


@dataclass
class _Live:
    """A row in the running batch and what it generated so far."""

    pending: _Pending
    tokens: list[int] = field(default_factory=list)
    stopped_at: int | None = None  # tokens it had when a stop string appeared
    grammar_live: bool = False  # its matcher still accepts its tokens
    turn: int = 0  # tokens decoded since it (re)joined the batch

    def __post_init__(self) -> None:
        self.row = self.pending.row
        self.grammar_live = self.row.matcher is not None
        self.tail = stop_window(self.row.stop)


@dataclass
class _Running:
    """The running batch: its rows, their KV cache, attention mask (rows, cache length), and
    each row's last token (the next step's input)."""

    rows: list[_Live]
    cache: Any
    mask: torch.Tensor
    last: torch.Tensor


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
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.pad_token_id = pad_token_id
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000
        self.name = name
        self.device = next(model.parameters()).device
        #: Prefill (or generate) calls run so far, each admitting the requests queued together,
        #: and the rows they held (tests, benchmarks).
        self.generate_calls = 0
        self.generated_rows = 0
        #: Rows that stepped aside for waiting requests so far (see PREEMPT_AFTER).
        self.preemptions = 0
        #: Our own decode loop; False: one `model.generate` per batch (see module docstring).
        self.continuous = _plain_dynamic_cache(model, self.device)
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        # One thread: forward passes run one after another, never racing for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfalign-engine")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._running: _Running | None = None  # the running batch (touched by the thread only)
        self._active: list[_Pending] = []  # its requests, as the async side last saw them
        self._paused: list[_Live] = []  # rows that stepped aside, oldest first (thread side)
        self._arrived = threading.Event()  # set by generate(): new work waits in the queue
        self._jobs_waiting = 0  # run_exclusive jobs queued behind the decode loop
        self._jobs_lock = threading.Lock()
        self._bitmask: torch.Tensor | None = None
        self._forbidden_in_json: torch.Tensor | None = None  # see decoding.control_token_mask

    # -- the async side: queue and batching worker ------------------------------------------

    async def generate(self, row: Row) -> Completion:
        """Queue the row and wait for the step that finishes it."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        loop = asyncio.get_running_loop()
        queue = self._ensure_worker(loop)
        future: asyncio.Future[Completion] = loop.create_future()
        queue.put_nowait(_Pending(row, future))
        self._arrived.set()
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
            with _forward_mode():
                return fn()

        with self._jobs_lock:
            self._jobs_waiting += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[_Pending]:
        # The queue and worker belong to one event loop; an engine reused under a new loop
        # (e.g. two asyncio.run calls) starts a fresh pair there.
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue), name=f"{self.name} batcher")
        assert self._queue is not None
        return self._queue

    async def _serve(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._active or self._paused:  # the engine runs: admit what is queued now, without waiting
                room = self.max_batch_size - len(self._active)
                admit = [queue.get_nowait() for _ in range(min(room, queue.qsize()))]
            else:
                admit = await self._collect(queue)
            admit = [p for p in admit if not p.future.done()]  # callers may have given up
            if not admit and not self._active and not self._paused:
                continue
            if queue.empty():  # else it stays set, and the decode loop makes room
                self._arrived.clear()
            try:
                finished = await loop.run_in_executor(self._executor, self._advance, admit)
            except asyncio.CancelledError:
                _fail(self._in_flight(admit), ModelError(f"{self.name}: the provider was closed during the call"))
                raise
            except Exception as exc:  # a forward pass failed: every row in flight fails
                _fail(self._in_flight(admit), _forward_error(self.name, exc))
                self._running, self._active, self._paused = None, [], []
                continue
            for pending, result in finished:
                if not pending.future.done():
                    pending.future.set_result(result)
            self._active = [] if self._running is None else [live.pending for live in self._running.rows]

    def _in_flight(self, admit: list[_Pending]) -> list[_Pending]:
        return [*self._active, *admit, *(live.pending for live in self._paused)]

    async def _collect(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
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
        self._closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _fail([self._queue.get_nowait()], ModelError(f"{self.name}: the provider is closed"))
        _fail([live.pending for live in self._paused], ModelError(f"{self.name}: the provider is closed"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.model = None  # drop our reference so the weights can be freed

    # -- the thread side: admit, step, retire ---------------------------------------------

    def _advance(self, admit: list[_Pending]) -> list[tuple[_Pending, Completion]]:
        """Admit new rows, then decode until a row finishes or new work can be admitted.

        Returns the requests answered.
        """
        lives = [_Live(pending) for pending in admit]
        if not self.continuous:  # one generate call per batch, as transformers runs it
            if not lives:
                return []
            completions = self._generate([live.row for live in lives])
            return [(live.pending, c) for live, c in zip(lives, completions, strict=True)]
        finished: list[tuple[_Pending, Completion]] = []
        with _forward_mode():
            lives += self._resume(self.max_batch_size - len(lives) - self._batch_size())
            if lives:
                self._admit(lives)
                finished += self._retire()
            while self._running is not None and not finished and not self._closed:
                room = self.max_batch_size - len(self._running.rows)
                if room and self._arrived.is_set():
                    break  # back to the event loop, which admits the newcomers
                if room and self._paused and (back := self._resume(room)):
                    self._admit(back)
                elif self._arrived.is_set() and self._pause_one():
                    continue  # a row that had its turn made room for the newcomers
                else:
                    self._step()
                finished += self._retire()
                if self._jobs_waiting:
                    break  # a scoring job waits in the executor's queue: let it run now
        return finished

    def _batch_size(self) -> int:
        return 0 if self._running is None else len(self._running.rows)

    def _resume(self, room: int) -> list[_Live]:
        """Up to `room` paused rows, oldest first, to rejoin the batch (those whose caller is
        gone are dropped)."""
        self._paused = [live for live in self._paused if not live.pending.future.done()]
        back, self._paused = self._paused[: max(room, 0)], self._paused[max(room, 0) :]
        return back

    def _pause_one(self) -> bool:
        """Take the row that has run longest since it joined out of the full batch, keeping
        its tokens; False if no row has had PREEMPT_AFTER tokens yet."""
        run = self._running
        assert run is not None
        k = max(range(len(run.rows)), key=lambda i: run.rows[i].turn)
        if run.rows[k].turn < PREEMPT_AFTER:
            return False
        self._paused.append(run.rows[k])
        self._keep([i for i in range(len(run.rows)) if i != k])
        self.preemptions += 1
        return True

    def _admit(self, lives: list[_Live]) -> None:
        """Prefill the rows and join them to the running batch. A new row chooses its first
        token; a paused one prefills its prompt and tokens but the last, which is its next input."""
        from transformers import DynamicCache

        ids = [live.row.prompt_ids + live.tokens[:-1] for live in lives]
        input_ids, mask = _left_pad(ids, self.pad_token_id, self.device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        cache = DynamicCache(config=self.model.config)
        extra = {"logits_to_keep": 1} if self._logits_to_keep else {}
        out = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            past_key_values=cache, use_cache=True, **extra,
        )
        self.generate_calls += 1
        self.generated_rows += len(lives)
        last = torch.tensor([live.tokens[-1] if live.tokens else 0 for live in lives], device=self.device)
        fresh = [k for k, live in enumerate(lives) if not live.tokens]
        if fresh:
            index = torch.tensor(fresh, device=self.device)
            last[index] = self._choose(out.logits[index, -1, :], [lives[k] for k in fresh])
        for live in lives:
            live.turn = 0
        new = _Running(lives, out.past_key_values, mask, last)
        self._running = new if self._running is None else _merge(self._running, new)

    def _step(self) -> None:
        """One decode step of every row in the running batch."""
        run = self._running
        assert run is not None
        positions = run.mask.sum(-1, keepdim=True)  # real tokens so far = the new token's position
        run.mask = torch.cat([run.mask, run.mask.new_ones((run.mask.shape[0], 1))], dim=-1)
        out = self.model(
            input_ids=run.last[:, None], attention_mask=run.mask, position_ids=positions,
            past_key_values=run.cache, use_cache=True,
        )
        run.cache = out.past_key_values
        run.last = self._choose(out.logits[:, -1, :], run.rows)

    def _choose(self, logits: torch.Tensor, lives: list[_Live]) -> torch.Tensor:
        """Each row's next token (grammar mask, then seeded sampling or greedy); record it."""
        scores = logits.float()
        self._mask_grammar(scores, lives)
        sampled = [k for k, live in enumerate(lives) if live.row.temperature > 0]
        sample_rows(
            scores,
            sampled,
            [lives[k].row.temperature for k in sampled],
            [lives[k].row.top_p for k in sampled],
            [lives[k].row.seed for k in sampled],
            [len(lives[k].tokens) for k in sampled],
        )
        chosen = scores.argmax(dim=-1)
        for live, token in zip(lives, chosen.tolist(), strict=True):
            live.tokens.append(token)
            live.turn += 1
            if live.grammar_live and not live.row.matcher.is_terminated():
                live.grammar_live = bool(live.row.matcher.accept_token(token))
            if live.row.stop and token not in self.eos_token_ids:
                if stop_reached(self.tokenizer, live.tokens[-live.tail :], live.row.stop):
                    live.stopped_at = len(live.tokens)
        return chosen

    def _mask_grammar(self, scores: torch.Tensor, lives: list[_Live]) -> None:
        """Mask what each constrained row's grammar forbids; a finished grammar allows only EOS."""
        constrained = [k for k, live in enumerate(lives) if live.grammar_live]
        if not constrained:
            return
        import xgrammar as xgr

        if self._bitmask is None or self._bitmask.shape[0] < len(lives):
            self._bitmask = xgr.allocate_token_bitmask(max(len(lives), self.max_batch_size), scores.shape[-1])
        rows = [(k, lives[k].row.matcher) for k in constrained]
        forbidden = self._json_forbidden(scores.shape[-1], scores.device)
        mask_grammar_rows(scores, rows, self._bitmask, self.eos_token_ids[0], forbidden)

    def _json_forbidden(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """Tokens never allowed in a constrained row (see `control_token_mask`), built once."""
        if self._forbidden_in_json is None:
            self._forbidden_in_json = control_token_mask(self.tokenizer, vocab_size, self.eos_token_ids)
        if self._forbidden_in_json.device != device:
            self._forbidden_in_json = self._forbidden_in_json.to(device)
        return self._forbidden_in_json

    def _retire(self) -> list[tuple[_Pending, Completion]]:
        """Answer the rows that finished (EOS, max_tokens, stop string, caller gone) and drop
        them from the batch, with the cache columns no remaining row uses."""
        run = self._running
        assert run is not None
        eos = set(self.eos_token_ids)
        keep: list[int] = []
        done: list[tuple[_Pending, Completion]] = []
        for k, live in enumerate(run.rows):
            if (
                live.tokens[-1] in eos
                or len(live.tokens) >= live.row.max_tokens
                or live.stopped_at is not None
                or live.pending.future.done()
            ):
                done.append((live.pending, self._read_row(live.row, live.tokens, live.stopped_at)))
            else:
                keep.append(k)
        if done:
            self._keep(keep)
        return done

    def _keep(self, keep: list[int]) -> None:
        """Keep only these rows of the running batch, and the cache columns they use."""
        run = self._running
        assert run is not None
        if not keep:
            self._running = None
            return
        index = torch.tensor(keep, device=run.mask.device)
        run.rows = [run.rows[k] for k in keep]
        run.mask, run.last = run.mask[index], run.last[index]
        start = int(run.mask.any(dim=0).to(torch.int8).argmax())  # leading all-padding columns
        run.mask = run.mask[:, start:]
        for layer in run.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    # -- the fallback: one generate call per batch ------------------------------------------

    def _generate(self, rows: list[Row]) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        input_ids, attention_mask = _left_pad([r.prompt_ids for r in rows], self.pad_token_id, self.device)
        prompt_len = input_ids.shape[1]
        processors = LogitsProcessorList()
        if any(r.matcher is not None for r in rows):
            vocab = self.model.get_output_embeddings().weight.shape[0]
            forbidden = self._json_forbidden(vocab, self.device)
            processors.append(GrammarProcessor([r.matcher for r in rows], self.eos_token_ids[0], prompt_len, forbidden))
        if any(r.temperature > 0 for r in rows):  # after the grammar: masked tokens stay -inf
            processors.append(
                RowSampler([r.temperature for r in rows], [r.top_p for r in rows], [r.seed for r in rows], prompt_len)
            )
        stopper = RowStopper([r.max_tokens for r in rows], [r.stop for r in rows], prompt_len, self.tokenizer)
        # A fresh config: the checkpoint's own sampling defaults (top_k, repetition penalty...)
        # would apply to every row alike and break per-row reproducibility; greedy + processors.
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(r.max_tokens for r in rows),
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )
        with _forward_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        self.generate_calls += 1
        self.generated_rows += len(rows)
        new_tokens = output[:, prompt_len:].tolist()
        return [
            self._read_row(row, tokens, stopped_at)
            for row, tokens, stopped_at in zip(rows, new_tokens, stopper.stopped_at, strict=True)
        ]

    def _read_row(self, row: Row, tokens: list[int], stopped_at: int | None) -> Completion:
        """Cut a row's generated tokens to what it really produced, decode, apply stop strings."""
        # Beyond its own end a row holds padding (or tokens past its max_tokens): cut first,
        # since the pad token may be the EOS token.
        tokens = tokens[: stopped_at if stopped_at is not None else row.max_tokens]
        finish = "length"
        eos = set(self.eos_token_ids)
        body = tokens
        for k, token in enumerate(tokens):
            if token in eos:
                tokens, body, finish = tokens[: k + 1], tokens[:k], "stop"
                break
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in row.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(
            text=text,
            prompt_tokens=len(row.prompt_ids),
            completion_tokens=len(tokens),
            finish_reason=finish,
        )


# -- batch helpers --------------------------------------------------------------------------


def _left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align the token ids, so every row's next token comes at the same position."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        n = len(ids)
        input_ids[i, width - n :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, width - n :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _merge(old: _Running, new: _Running) -> _Running:
    """One batch of both: the shorter side's cache and mask padded on the left (masked out)."""
    width = max(old.mask.shape[1], new.mask.shape[1])

    def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
        missing = width - t.shape[dim]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for a, b in zip(old.cache.layers, new.cache.layers, strict=True):
        a.keys = torch.cat([pad(a.keys, -2), pad(b.keys, -2)], dim=0)
        a.values = torch.cat([pad(a.values, -2), pad(b.values, -2)], dim=0)
    return _Running(
        old.rows + new.rows,
        old.cache,
        torch.cat([pad(old.mask, 1), pad(new.mask, 1)], dim=0),
        torch.cat([old.last, new.last]),
    )


@contextlib.contextmanager
def _forward_mode() -> Any:
    """Inference mode, and attention by a backend that costs nothing per new shape."""
    with torch.inference_mode(), attention_without_cudnn():
        yield


def _plain_dynamic_cache(model: Any, device: torch.device) -> bool:
    """Whether the model's cache is a DynamicCache of plain DynamicLayers (keys and values of
    shape (batch, heads, length, dim)), which our own decode loop can slice and merge."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            out = model(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device), past_key_values=cache, use_cache=True)
        layers = out.past_key_values.layers
        return isinstance(out.past_key_values, DynamicCache) and bool(layers) and all(
            type(layer) is DynamicLayer and layer.keys.shape[-2] == 2 for layer in layers
        )
    except Exception as exc:  # an unusual model: generate() knows its ways
        log.debug("no continuous batching for this model (%s); one generate call per batch", exc)
        return False


def _fail(batch: list[_Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _forward_error(name: str, exc: Exception) -> Exception:
    """Out of memory may pass with a smaller batch on retry; anything else is for good."""
    if isinstance(exc, torch.OutOfMemoryError):
        return TransientError(f"{name}: out of GPU memory in a batched forward pass ({exc}); lower max_batch_size if this repeats")
    return ModelError(f"{name}: generate failed: {type(exc).__name__}: {exc}")
