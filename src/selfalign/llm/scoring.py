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

Prompt log-probabilities (`prompt_logprobs`, for a server's `/v1/completions` with `echo`):
every token's log-probability after the ones before it, the most likely tokens at each
position, and the greedy next token, from the same kind of padded passes.

`Batcher` gathers the rows of concurrent requests into passes, which the provider runs where its
forward passes run (the engine's thread), between two decoding steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, TypeVar

import torch

from .types import Loglikelihood, PromptLogprobs, TokenLogprob

In = TypeVar("In")
Out = TypeVar("Out")

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


def prompt_logprobs(
    model: Any, tokenizer: Any, prompts: list[list[int]], *, pad_id: int, top_k: int, max_elements: int = 2**27
) -> list[PromptLogprobs]:
    """Each prompt's token log-probabilities, the `top_k` most likely tokens at every position and
    the greedy next token. Passes hold at most `max_elements` logits (rows x width x vocabulary).
    The caller holds torch.inference_mode."""
    vocab = int(model.get_output_embeddings().weight.shape[0])
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[PromptLogprobs | None] = [None] * len(prompts)
    batch: list[int] = []
    for i in [*order, None]:
        if batch and (i is None or (len(batch) + 1) * len(prompts[batch[0]]) * vocab > max_elements):
            logprobs = _all_logprobs(model, [prompts[k] for k in batch], pad_id)
            for row, k in enumerate(batch):
                results[k] = _prompt_result(tokenizer, prompts[k], logprobs[row, -len(prompts[k]) :], top_k)
            batch = []
        if i is not None:
            batch.append(i)
    return [r for r in results if r is not None]


def _all_logprobs(model: Any, prompts: list[list[int]], pad_id: int) -> torch.Tensor:
    """log_softmax over the vocabulary at every position, float32, prompts padded on the left."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for k, ids in enumerate(prompts):
        input_ids[k, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[k, width - len(ids) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False)
    return torch.log_softmax(out.logits.float(), dim=-1)


def _prompt_result(tokenizer: Any, ids: list[int], logprobs: torch.Tensor, top_k: int) -> PromptLogprobs:
    """`logprobs[i]` is the distribution after ids[: i + 1]: it scores ids[i + 1], and the last
    row the next token."""
    k = min(top_k, logprobs.shape[-1])
    top_values, top_ids = logprobs.topk(k, dim=-1) if k else (logprobs[:, :0], logprobs[:, :0].long())
    text = lambda t: tokenizer.decode([t])  # noqa: E731
    tops = [tuple((text(t), float(v)) for t, v in zip(ti.tolist(), tv.tolist())) for ti, tv in zip(top_ids, top_values)]
    tokens = [TokenLogprob(ids[0], text(ids[0]), None, ())]
    for i in range(1, len(ids)):
        tokens.append(TokenLogprob(ids[i], text(ids[i]), float(logprobs[i - 1, ids[i]]), tops[i - 1]))
    greedy = int(logprobs[-1].argmax())
    return PromptLogprobs(tuple(tokens), TokenLogprob(greedy, text(greedy), float(logprobs[-1, greedy]), tops[-1]))


def _keep_kwargs(model: Any, keep: int) -> dict[str, Any]:
    """Only the last `keep` positions' logits, where the model can skip the others."""
    import inspect

    return {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


@dataclass
class _Waiting(Generic[In, Out]):
    rows: list[In]
    future: asyncio.Future[list[Out]]


class Batcher(Generic[In, Out]):
    """Rows of concurrent `submit()` calls, gathered for `wait_s` after the first, handled
    together by `run(rows)` (which returns one result per row, in order)."""

    def __init__(self, run: Callable[[list[In]], Awaitable[list[Out]]], wait_s: float) -> None:
        self._run = run
        self.wait_s = wait_s
        self._waiting: list[_Waiting[In, Out]] = []
        self._flush: asyncio.TimerHandle | None = None
        #: Batches run so far (tests, benchmarks).
        self.batches = 0

    async def submit(self, rows: list[In]) -> list[Out]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        self._waiting.append(_Waiting(rows, future))
        if self._flush is None:
            self._flush = loop.call_later(self.wait_s, lambda: loop.create_task(self._run_waiting()))
        return await future

    async def _run_waiting(self) -> None:
        waiting, self._waiting, self._flush = [p for p in self._waiting if not p.future.done()], [], None
        if not waiting:
            return
        self.batches += 1
        try:
            results = await self._run([row for p in waiting for row in p.rows])
        except Exception as exc:  # every caller of the batch learns why
            for p in waiting:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in waiting:
            if not p.future.done():
                p.future.set_result(results[start : start + len(p.rows)])
            start += len(p.rows)
