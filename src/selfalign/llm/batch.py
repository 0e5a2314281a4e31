"""The engine's running batch: rows decoded together over one KV cache, and the rows' answers.

Rows are left-padded, so every row's next token comes at the same position. A row that leaves
takes its cache rows with it (and the leading columns no remaining row uses); rows prefilled
later merge in, the shorter side padded on the left and masked out. This slices the cache's
layers (`DynamicCache.layers[i].keys/values`), which `plain_dynamic_cache` checks a model has.

transformers renamed the forward pass's `past_key_values` argument and output to `cache`
(the old name still works there, with a FutureWarning); `cache_name` finds whichever the
installed version takes, so every version pyproject.toml allows runs without warnings.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .decoding import stop_window
from .types import Completion

log = logging.getLogger(__name__)


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
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) added at every step
    ngram_penalties: tuple[tuple[int, float], ...] = ()  # (n, penalty), see decoding.ngram_penalty


@dataclass
class Pending:
    """A queued request: its row, the future its caller awaits, and what is told of each token
    the row chooses (in the engine's thread), if anything."""

    row: Row
    future: asyncio.Future[Completion]
    on_token: Callable[[int], None] | None = None


@dataclass
class LiveRow:
    """A row in the running batch and what it generated so far."""

    pending: Pending
    tokens: list[int] = field(default_factory=list)
    stopped_at: int | None = None  # tokens it had when a stop string appeared
    grammar_live: bool = False  # its matcher still accepts its tokens
    turn: int = 0  # tokens decoded since it (re)joined the batch

    def __post_init__(self) -> None:
        self.row = self.pending.row
        self.grammar_live = self.row.matcher is not None
        self.tail = stop_window(self.row.stop)


@dataclass
class RunningBatch:
    """The running batch: its rows, their KV cache, attention mask (rows, cache length), and
    each row's last token (the next step's input)."""

    rows: list[LiveRow]
    cache: Any
    mask: torch.Tensor
    last: torch.Tensor

    def keep(self, keep: list[int]) -> None:
        """Keep only these rows (at least one), and the cache columns they use."""
        index = torch.tensor(keep, device=self.mask.device)
        self.rows = [self.rows[k] for k in keep]
        self.mask, self.last = self.mask[index], self.last[index]
        start = int(self.mask.any(dim=0).to(torch.int8).argmax())  # leading all-padding columns
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    def merge(self, new: RunningBatch) -> RunningBatch:
        """One batch of both: the shorter side's cache and mask padded on the left (masked out)."""
        width = max(self.mask.shape[1], new.mask.shape[1])

        def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - t.shape[dim]
            if missing == 0:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for a, b in zip(self.cache.layers, new.cache.layers, strict=True):
            a.keys = torch.cat([pad(a.keys, -2), pad(b.keys, -2)], dim=0)
            a.values = torch.cat([pad(a.values, -2), pad(b.values, -2)], dim=0)
        return RunningBatch(
            self.rows + new.rows,
            self.cache,
            torch.cat([pad(self.mask, 1), pad(new.mask, 1)], dim=0),
            torch.cat([self.last, new.last]),
        )


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align the token ids, so every row's next token comes at the same position."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        n = len(ids)
        input_ids[i, width - n :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, width - n :] = 1
    return input_ids.to(device), attention_mask.to(device)


def prefill(model: Any, name: str, ids: list[list[int]], pad_id: int, device: torch.device, **extra: Any) -> tuple[Any, torch.Tensor]:
    """One forward pass over the rows' tokens, left-padded, into a fresh DynamicCache: the
    model's output and the attention mask (rows, length). `name`: see `cache_name`."""
    from transformers import DynamicCache

    input_ids, mask = left_pad(ids, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
        **{name: DynamicCache(config=model.config)}, **extra,
    )
    return out, mask


def step_dynamic(model: Any, name: str, run: RunningBatch) -> torch.Tensor:
    """One decode step of every row over the batch's DynamicCache, which grows by a column:
    the next-token logits (rows, vocab). Today's path; static_decode.py runs the same step at
    fixed shapes."""
    positions = run.mask.sum(-1, keepdim=True)  # real tokens so far = the new token's position
    run.mask = torch.cat([run.mask, run.mask.new_ones((run.mask.shape[0], 1))], dim=-1)
    out = model(
        input_ids=run.last[:, None], attention_mask=run.mask, position_ids=positions,
        use_cache=True, **{name: run.cache},
    )
    run.cache = out[name]
    return out.logits[:, -1, :]


def cache_name(model: Any) -> str:
    """The name of the KV cache in `model`'s forward pass, as argument and as output field:
    `cache` where transformers has renamed `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def plain_dynamic_cache(model: Any, device: torch.device) -> bool:
    """Whether the model's cache is a DynamicCache of plain DynamicLayers (keys and values of
    shape (batch, heads, length, dim)), which our own decode loop can slice and merge."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    name = cache_name(model)
    try:
        ids = torch.zeros((1, 2), dtype=torch.long, device=device)
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True, **{name: DynamicCache(config=model.config)})
        cache = out[name]
        layers = cache.layers
        return isinstance(cache, DynamicCache) and bool(layers) and all(
            type(layer) is DynamicLayer and layer.keys.shape[-2] == 2 for layer in layers
        )
    except Exception as exc:  # an unusual model: generate() knows its ways
        log.debug("no continuous batching for this model (%s); one generate call per batch", exc)
        return False


def read_completion(
    tokenizer: Any, eos_token_ids: list[int], row: Row, tokens: list[int], stopped_at: int | None
) -> Completion:
    """Cut a row's generated tokens to what it really produced, decode, apply stop strings."""
    # Beyond its own end a row holds padding (or tokens past its max_tokens): cut first,
    # since the pad token may be the EOS token.
    tokens = tokens[: stopped_at if stopped_at is not None else row.max_tokens]
    finish = "length"
    eos = set(eos_token_ids)
    body = tokens
    for k, token in enumerate(tokens):
        if token in eos:
            tokens, body, finish = tokens[: k + 1], tokens[:k], "stop"
            break
    text = tokenizer.decode(body, skip_special_tokens=True)
    cut = min((i for i in (text.find(s) for s in row.stop) if i >= 0), default=-1)
    if cut >= 0:
        text, finish = text[:cut], "stop"
    return Completion(
        text=text,
        prompt_tokens=len(row.prompt_ids),
        completion_tokens=len(tokens),
        finish_reason=finish,
    )
