"""The engine's decode loop: the thread side of `engine.BatchEngine`, which runs the model.

`advance` admits the requests the engine hands it (prefilling them and joining them to the
running batch, batch.py), then decodes step by step until a row finishes, new requests wait
with room for them, or a scoring job waits for the thread. Each step chooses every row's next
token with that row's own settings (decoding.py): its grammar's mask, then seeded sampling or
greedy; then checks its stop strings. A finished row leaves the batch with its cache rows. The
forward pass of a step is `batch.step_dynamic`, or with `compile_decode` the fixed-shape step of
static_decode.py, which holds the cache in its own buffers between the batch's joins and leaves.

Fairness: when new requests wait and the batch is full, the row that has run longest since it
joined (at least `PREEMPT_AFTER` tokens) steps aside, keeping its tokens, grammar state and
seed; when a row finishes and no new request waits, it rejoins (its prompt and tokens prefilled
anew) and goes on as if never paused, up to the float noise of padding.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from typing import Any, Callable

import torch

from .batch import LiveRow, Pending, Row, RunningBatch, cache_name, plain_dynamic_cache, prefill, read_completion, step_dynamic
from .checkpoints import attention_without_cudnn
from .decoding import adjust_row, control_token_mask, mask_grammar_rows, sample_rows, stop_reached
from .generate_batch import generate_batch
from .static_decode import StaticDecoder, open_static_decoder
from .types import Completion

#: Tokens a row decodes after joining the batch before it may step aside for waiting requests.
PREEMPT_AFTER = 32


class DecodeLoop:
    """The running batch of one model, advanced in the engine's thread only.

    `arrived` is set by the engine when new requests wait in its queue; `jobs_waiting()` says
    whether a scoring job waits for the thread; `closed` stops decoding within one step.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        eos_token_ids: list[int],
        pad_token_id: int,
        max_batch_size: int,
        jobs_waiting: Callable[[], bool],
        compile_decode: str = "off",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.pad_token_id = pad_token_id
        self.max_batch_size = max_batch_size
        self.jobs_waiting = jobs_waiting
        self.device = next(model.parameters()).device
        #: Prefill (or generate) calls run so far, each admitting the requests queued together,
        #: and the rows they held (tests, benchmarks).
        self.generate_calls = 0
        self.generated_rows = 0
        #: Rows that stepped aside for waiting requests so far (see PREEMPT_AFTER).
        self.preemptions = 0
        #: Our own decode loop; False: one `model.generate` per batch (generate_batch.py).
        self.continuous = plain_dynamic_cache(model, self.device)
        self.running: RunningBatch | None = None
        self.paused: list[LiveRow] = []  # rows that stepped aside, oldest first
        self.arrived = threading.Event()
        self.closed = False
        self._cache_name = cache_name(model)  # `cache`, or `past_key_values` before transformers renamed it
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._bitmask: torch.Tensor | None = None
        self._forbidden_in_json: torch.Tensor | None = None  # see decoding.control_token_mask
        #: Decode steps at fixed shapes, compiled or captured (static_decode.py); None: today's path.
        self.static: StaticDecoder | None = open_static_decoder(model, compile_decode, self._cache_name, self.continuous)

    def reset(self) -> None:
        """Drop every row (after a failed forward pass: their callers were answered with it)."""
        self.running, self.paused = None, []
        if self.static is not None:
            self.static.forget()

    def advance(self, admit: list[Pending]) -> list[tuple[Pending, Completion]]:
        """Admit new rows, then decode until a row finishes or new work can be admitted.

        Returns the requests answered.
        """
        lives = [LiveRow(pending) for pending in admit]
        if not self.continuous:  # one generate call per batch, as transformers runs it
            if not lives:
                return []
            completions = self._generate([live.row for live in lives])
            return [(live.pending, c) for live, c in zip(lives, completions, strict=True)]
        finished: list[tuple[Pending, Completion]] = []
        with forward_mode():
            lives += self._resume(self.max_batch_size - len(lives) - self._batch_size())
            if lives:
                self._admit(lives)
                finished += self._retire()
            while self.running is not None and not finished and not self.closed:
                room = self.max_batch_size - len(self.running.rows)
                if room and self.arrived.is_set():
                    break  # back to the event loop, which admits the newcomers
                if room and self.paused and (back := self._resume(room)):
                    self._admit(back)
                elif self.arrived.is_set() and self._pause_one():
                    continue  # a row that had its turn made room for the newcomers
                else:
                    self._step()
                finished += self._retire()
                if self.jobs_waiting():
                    break  # a scoring job waits in the executor's queue: let it run now
        return finished

    def _batch_size(self) -> int:
        return 0 if self.running is None else len(self.running.rows)

    def _resume(self, room: int) -> list[LiveRow]:
        """Up to `room` paused rows, oldest first, to rejoin the batch (those whose caller is
        gone are dropped)."""
        self.paused = [live for live in self.paused if not live.pending.future.done()]
        back, self.paused = self.paused[: max(room, 0)], self.paused[max(room, 0) :]
        return back

    def _pause_one(self) -> bool:
        """Take the row that has run longest since it joined out of the full batch, keeping
        its tokens; False if no row has had PREEMPT_AFTER tokens yet."""
        run = self.running
        assert run is not None
        k = max(range(len(run.rows)), key=lambda i: run.rows[i].turn)
        if run.rows[k].turn < PREEMPT_AFTER:
            return False
        self.paused.append(run.rows[k])
        self._keep([i for i in range(len(run.rows)) if i != k])
        self.preemptions += 1
        return True

    def _admit(self, lives: list[LiveRow]) -> None:
        """Prefill the rows and join them to the running batch. A new row chooses its first
        token; a paused one prefills its prompt and tokens but the last, which is its next input."""
        ids = [live.row.prompt_ids + live.tokens[:-1] for live in lives]
        extra = {"logits_to_keep": 1} if self._logits_to_keep else {}
        out, mask = prefill(self.model, self._cache_name, ids, self.pad_token_id, self.device, **extra)
        self.generate_calls += 1
        self.generated_rows += len(lives)
        last = torch.tensor([live.tokens[-1] if live.tokens else 0 for live in lives], device=self.device)
        fresh = [k for k, live in enumerate(lives) if not live.tokens]
        if fresh:
            index = torch.tensor(fresh, device=self.device)
            last[index] = self._choose(out.logits[index, -1, :], [lives[k] for k in fresh])
        for live in lives:
            live.turn = 0
        new = RunningBatch(lives, out[self._cache_name], mask, last)
        if self.running is not None and self.static is not None:
            self.static.release(self.running)  # merge reads the cache's layers
        self.running = new if self.running is None else self.running.merge(new)

    def _step(self) -> None:
        """One decode step of every row in the running batch."""
        run = self.running
        assert run is not None
        logits = self.static.step(run) if self.static is not None else None
        if logits is None:  # today's path: shapes that grow every step
            logits = step_dynamic(self.model, self._cache_name, run)
        run.last = self._choose(logits, run.rows)

    def _choose(self, logits: torch.Tensor, lives: list[LiveRow]) -> torch.Tensor:
        """Each row's next token (logit bias and n-gram penalties, grammar mask, then seeded
        sampling or greedy); record it."""
        scores = logits.float()
        for k, live in enumerate(lives):  # before the grammar: a bias never lifts a masked token
            if live.row.logit_bias or live.row.ngram_penalties:
                adjust_row(scores, k, live.tokens, live.row.logit_bias, live.row.ngram_penalties)
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
            if live.pending.on_token is not None:
                live.pending.on_token(token)
            if live.grammar_live and not live.row.matcher.is_terminated():
                live.grammar_live = bool(live.row.matcher.accept_token(token))
            if live.row.stop and token not in self.eos_token_ids:
                if stop_reached(self.tokenizer, live.tokens[-live.tail :], live.row.stop):
                    live.stopped_at = len(live.tokens)
        return chosen

    def _mask_grammar(self, scores: torch.Tensor, lives: list[LiveRow]) -> None:
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

    def _retire(self) -> list[tuple[Pending, Completion]]:
        """Answer the rows that finished (EOS, max_tokens, stop string, caller gone) and drop
        them from the batch, with the cache columns no remaining row uses."""
        run = self.running
        assert run is not None
        eos = set(self.eos_token_ids)
        keep: list[int] = []
        done: list[tuple[Pending, Completion]] = []
        for k, live in enumerate(run.rows):
            if (
                live.tokens[-1] in eos
                or len(live.tokens) >= live.row.max_tokens
                or live.stopped_at is not None
                or live.pending.future.done()
            ):
                done.append((live.pending, read_completion(self.tokenizer, self.eos_token_ids, live.row, live.tokens, live.stopped_at)))
            else:
                keep.append(k)
        if done:
            self._keep(keep)
        return done

    def _keep(self, keep: list[int]) -> None:
        """Keep only these rows of the running batch, and the cache columns they use."""
        assert self.running is not None
        if self.static is not None:
            self.static.release(self.running)  # keep slices the cache's layers
        if keep:
            self.running.keep(keep)
        else:
            self.running = None

    def _generate(self, rows: list[Row]) -> list[Completion]:
        """The fallback: one `model.generate` call for the batch (generate_batch.py)."""
        with forward_mode():
            completions = generate_batch(
                self.model, self.tokenizer, rows, eos_token_ids=self.eos_token_ids,
                pad_token_id=self.pad_token_id, forbidden_in_json=self._json_forbidden,
            )
        self.generate_calls += 1
        self.generated_rows += len(rows)
        return completions


@contextlib.contextmanager
def forward_mode() -> Any:
    """Inference mode, and attention by a backend that costs nothing per new shape (cuDNN's
    builds a graph per new shape, and a decode loop meets one nearly every step)."""
    with torch.inference_mode(), attention_without_cudnn():
        yield
