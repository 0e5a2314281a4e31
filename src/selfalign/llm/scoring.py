"""Log-likelihoods of continuations for `hf:`, computed as lm-evaluation-harness 0.4 computes
them, in batched forward passes.

Tokenisation (`encode_pair`): whitespace at the end of the context moves to the start of the
continuation; the context is tokenised alone, the context and continuation together, and the
continuation's tokens are what the whole has after the context's tokens. The tokenizer adds
its own special tokens (a BOS for Llama-style tokenizers, nothing for Qwen's), unless the
context already starts with one; an empty context is the model's BOS (or EOS) token.

Scoring (`score_rows`): the model reads context + continuation (without its last token; the
most recent `max_length + 1` tokens when longer), and a continuation's score is the sum over
its tokens of log_softmax(logits) in float32 at the positions that predict them; it is greedy
when every one of its tokens is the argmax there. Rows of many requests share a forward pass:
sorted by length (so rows of similar length are padded together), padded on the left with the
attention mask and position ids set so that padding changes nothing but float rounding, and only
the logits of continuation positions are computed.

`ScoreBatcher` gathers the rows of concurrent requests into passes and runs them where the
provider's forward passes run (the engine's thread), between two decoding steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import torch

from .types import Loglikelihood

#: Padded tokens per forward pass (rows x longest row) when scoring.
SCORE_BATCH_TOKENS = 16_384


@dataclass(frozen=True)
class ScoreRow:
    """Token ids of one context and one continuation to score after it."""

    context: list[int]
    continuation: list[int]


def encode_pair(tokenizer: Any, context: str, continuation: str, prefix_id: int) -> ScoreRow:
    """lm-evaluation-harness's split of (context, continuation) into token ids (see module doc).
    `prefix_id` (BOS, else EOS) is the context of an empty context."""
    if not context:
        ids = _ids(tokenizer, continuation, special=False)
        if ids and ids[0] == prefix_id:
            return ScoreRow(ids[:1], ids[1:])
        return ScoreRow([prefix_id], ids)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    prefix = tokenizer.decode([prefix_id])
    whole = _ids(tokenizer, context + continuation, special=not (prefix and context.startswith(prefix)))
    context_ids = _ids(tokenizer, context, special=not (prefix and context.startswith(prefix)))
    return ScoreRow(context_ids, whole[len(context_ids) :])


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    """Token ids with the special tokens the tokenizer adds by itself (a BOS for some), as
    lm-evaluation-harness encodes, unless the text already starts with one."""
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def model_input(row: ScoreRow, max_length: int) -> list[int]:
    """What the model reads for a row: context + continuation without its last token, keeping
    the most recent `max_length` tokens (the continuation's first predicting position included)."""
    return (row.context + row.continuation)[-(max_length + 1) :][:-1]


def score_rows(
    model: Any, rows: list[ScoreRow], *, pad_id: int, max_length: int, batch_tokens: int = SCORE_BATCH_TOKENS
) -> list[Loglikelihood]:
    """Every row's summed log-probability and greediness, in as few forward passes as fit
    `batch_tokens` padded tokens each. The caller holds torch.inference_mode."""
    order = sorted(range(len(rows)), key=lambda i: -len(model_input(rows[i], max_length)))
    results: list[Loglikelihood | None] = [None] * len(rows)
    for batch in _batches(order, rows, max_length, batch_tokens):
        for i, result in zip(batch, _score_batch(model, [rows[i] for i in batch], pad_id, max_length), strict=True):
            results[i] = result
    return [r for r in results if r is not None]


def _batches(order: list[int], rows: list[ScoreRow], max_length: int, batch_tokens: int) -> list[list[int]]:
    """Consecutive runs of `order` (longest first) whose padded size (rows x the first, longest
    row) fits `batch_tokens`; a row longer than that gets a pass of its own."""
    batches: list[list[int]] = []
    width = 0
    for i in order:
        if batches and (len(batches[-1]) + 1) * width <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
            width = len(model_input(rows[i], max_length))
    return batches


def _score_batch(model: Any, rows: list[ScoreRow], pad_id: int, max_length: int) -> list[Loglikelihood]:
    inputs = [model_input(row, max_length) for row in rows]
    device = next(model.parameters()).device
    width = max(len(ids) for ids in inputs)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, ids in enumerate(inputs):
        input_ids[k, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[k, width - len(ids) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    keep = max(len(row.continuation) for row in rows)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False, **_keep_kwargs(model, keep))
    logprobs = torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)
    results = []
    for k, row in enumerate(rows):
        n = len(row.continuation)
        own = logprobs[k, keep - n :, :]
        target = torch.tensor(row.continuation, device=own.device)
        picked = own.gather(-1, target[:, None]).squeeze(-1)
        results.append(Loglikelihood(float(picked.sum()), bool((own.argmax(-1) == target).all())))
    return results


def _keep_kwargs(model: Any, keep: int) -> dict[str, Any]:
    """Only the last `keep` positions' logits, where the model can skip the others."""
    import inspect

    return {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


@dataclass
class _Waiting:
    rows: list[ScoreRow]
    future: asyncio.Future[list[Loglikelihood]]


class ScoreBatcher:
    """Rows of concurrent `score()` calls, gathered for `wait_s` after the first, scored together
    by `run(rows)` (which runs the forward passes and returns one result per row)."""

    def __init__(self, run: Callable[[list[ScoreRow]], Awaitable[list[Loglikelihood]]], wait_s: float) -> None:
        self._run = run
        self.wait_s = wait_s
        self._waiting: list[_Waiting] = []
        self._flush: asyncio.TimerHandle | None = None
        #: Scoring passes run so far (tests, benchmarks).
        self.batches = 0

    async def score(self, rows: list[ScoreRow]) -> list[Loglikelihood]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Loglikelihood]] = loop.create_future()
        self._waiting.append(_Waiting(rows, future))
        if self._flush is None:
            self._flush = loop.call_later(self.wait_s, lambda: loop.create_task(self._score_waiting()))
        return await future

    async def _score_waiting(self) -> None:
        waiting, self._waiting, self._flush = [p for p in self._waiting if not p.future.done()], [], None
        if not waiting:
            return
        self.batches += 1
        try:
            results = await self._run([row for p in waiting for row in p.rows])
        except Exception as exc:  # every caller of the pass learns why
            for p in waiting:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in waiting:
            if not p.future.done():
                p.future.set_result(results[start : start + len(p.rows)])
            start += len(p.rows)
