"""Per-row decoding for one batched `model.generate` call of the `hf:` provider.

transformers applies one set of sampling settings to a whole batch. To batch requests whose
settings differ, `generate` runs greedy (`do_sample=False`) and these objects do the per-row
work inside it:

- `GrammarProcessor`: JSON-schema constrained rows (one xgrammar matcher per row) get every
  token the grammar forbids masked to -inf.
- `RowSampler`: rows with temperature > 0 get temperature, top-p, then Gumbel noise from a
  generator seeded by (row seed, step). argmax(logits/T + Gumbel) is an exact sample from
  softmax(logits/T) (the Gumbel-max trick), so greedy `generate` samples; and because the noise
  depends only on the row's own seed and step, a request draws the same tokens alone or in any
  batch.
- `RowStopper`: stops each row at its own max_tokens, or when one of its stop strings appears.

Order matters: the grammar mask comes before the noise (forbidden tokens stay at -inf).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for (row seed, step): a hash, so nearby seeds give unrelated streams."""
    digest = hashlib.blake2b(f"{seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


_MASK32 = 0xFFFF_FFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2**32 for int64 tensors of 32-bit values, without int64 overflow."""
    return ((((x >> 16) * m) & _MASK32) << 16) + (x & 0xFFFF) * m & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """The lowbias32 integer hash (a bijection of 32-bit values, good avalanche)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def gumbel_rows(vocab: int, seeds: Sequence[int], steps: Sequence[int], device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise (len(seeds), vocab): row i depends only on (seeds[i], steps[i]).

    A counter-based generator: token v of a row gets hash(v, step_seed(seed, step)), so all rows
    come from a few tensor ops, with no per-row generator, and a row's noise is the same in
    any batch.
    """
    keys = [step_seed(seed, step) for seed, step in zip(seeds, steps, strict=True)]
    lo = torch.tensor([k & _MASK32 for k in keys], dtype=torch.int64, device=device)[:, None]
    hi = torch.tensor([k >> 32 for k in keys], dtype=torch.int64, device=device)[:, None]
    token = torch.arange(vocab, dtype=torch.int64, device=device)[None, :]
    bits = _mix32(_mix32(token ^ lo) ^ hi)
    # 24 random bits -> a float32 uniform strictly inside (0, 1): both logs stay finite.
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * 2.0**-24
    return -torch.log(-torch.log(uniform))


def gumbel_noise(vocab: int, seed: int, step: int, device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise of one row at one step, the same on every call with these args."""
    return gumbel_rows(vocab, [seed], [step], device)[0]


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf every token outside the smallest set whose probability reaches top_p."""
    if top_p >= 1.0:
        return logits
    return top_p_rows(logits[None], torch.tensor([top_p], device=logits.device))[0]


def top_p_rows(logits: torch.Tensor, top_ps: torch.Tensor) -> torch.Tensor:
    """`top_p_filter` for a (rows, vocab) tensor, with each row's own top_p (all < 1)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    # A token is dropped when the tokens ranked above it already hold top_p; the first never is.
    drop_sorted = (torch.cumsum(probs, dim=-1) - probs) > top_ps[:, None]
    drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_rows(
    scores: torch.Tensor,
    rows: Sequence[int],
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    seeds: Sequence[int],
    steps: Sequence[int],
) -> None:
    """Turn `scores[rows]` in place into temperature-scaled, top-p filtered, Gumbel-noised logits.

    The lists give each listed row's settings (all temperatures > 0) and the number of tokens
    it generated so far; the argmax of the result is then a seeded sample.
    """
    if not rows:
        return
    index = torch.tensor(rows, device=scores.device)
    temps = torch.tensor(temperatures, dtype=torch.float32, device=scores.device)
    logits = scores[index].float() / temps[:, None]
    nucleus = [k for k, p in enumerate(top_ps) if p < 1.0]
    if nucleus:
        sub = torch.tensor(nucleus, device=scores.device)
        ps = torch.tensor([top_ps[k] for k in nucleus], dtype=torch.float32, device=scores.device)
        logits[sub] = top_p_rows(logits[sub], ps)
    logits += gumbel_rows(logits.shape[-1], seeds, steps, scores.device)
    scores[index] = logits.to(scores.dtype)


@dataclass
class RowSampler(LogitsProcessor):
    """Temperature, top-p and seeded Gumbel noise per row; temperature-0 rows stay greedy."""

    temperatures: Sequence[float]
    top_ps: Sequence[float]
    seeds: Sequence[int]
    prompt_len: int  # padded prompt length: step = tokens generated so far

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        rows = [row for row, t in enumerate(self.temperatures) if t > 0]
        sample_rows(
            scores,
            rows,
            [self.temperatures[r] for r in rows],
            [self.top_ps[r] for r in rows],
            [self.seeds[r] for r in rows],
            [step] * len(rows),
        )
        return scores


def mask_grammar_rows(
    scores: torch.Tensor,
    rows: Sequence[tuple[int, Any]],
    bitmask: torch.Tensor,
    eos_token_id: int,
    forbidden: torch.Tensor | None,
) -> None:
    """Mask in place what each (row, xgrammar matcher) forbids next; a row whose grammar has
    terminated may only emit EOS. `forbidden` (on the scores' device): tokens never allowed in
    compact JSON, see `control_token_mask`. `bitmask` has at least as many rows as `scores`."""
    import xgrammar as xgr

    masked: list[int] = []
    live: list[Any] = []
    for row, matcher in rows:
        if matcher.is_terminated():
            scores[row].fill_(float("-inf"))
            scores[row, eos_token_id] = 0.0
            continue
        masked.append(row)
        live.append(matcher)
    if masked:
        # all rows' masks at once, on xgrammar's threads: 1.06-1.11x one row at a time at batch
        # 8-128 on SmolLM2's vocabulary (benchmarks/grammar_masks.py)
        _batch_matcher().batch_fill_next_token_bitmask(live, bitmask, masked)
        xgr.apply_token_bitmask_inplace(scores, bitmask[: scores.shape[0]].to(scores.device), indices=masked)
        if forbidden is not None:
            scores[masked] = scores[masked].masked_fill(forbidden[: scores.shape[-1]], float("-inf"))


_per_thread = threading.local()


def _batch_matcher() -> Any:
    """xgrammar's BatchGrammarMatcher, one per thread: each engine thread has its own."""
    if not hasattr(_per_thread, "batch_matcher"):
        import xgrammar as xgr

        _per_thread.batch_matcher = xgr.BatchGrammarMatcher(max_threads="auto")
    return _per_thread.batch_matcher


@dataclass
class GrammarProcessor(LogitsProcessor):
    """Constrains rows that have an xgrammar matcher (None for free rows) to their grammar.

    At each step it first feeds every live matcher the token its row chose last, then masks the
    tokens the grammar forbids next. A row whose matcher has terminated may only emit EOS. A row
    whose token is refused (it was stopped for length and now gets padding) is left alone.
    """

    matchers: list[Any | None]
    eos_token_id: int
    prompt_len: int
    #: Bool (vocab,): tokens never allowed in compact JSON, see `control_token_mask`.
    forbidden: torch.Tensor | None = None
    _bitmask: torch.Tensor | None = field(default=None, init=False)
    _live: list[bool] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._live = [m is not None for m in self.matchers]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        import xgrammar as xgr

        step = input_ids.shape[1] - self.prompt_len
        if step > 0:
            self._advance(input_ids[:, -1].tolist())
        if self._bitmask is None:
            self._bitmask = xgr.allocate_token_bitmask(len(self.matchers), scores.shape[-1])
        if self.forbidden is not None and self.forbidden.device != scores.device:
            self.forbidden = self.forbidden.to(scores.device)
        live = [(row, m) for row, m in enumerate(self.matchers) if m is not None and self._live[row]]
        mask_grammar_rows(scores, live, self._bitmask, self.eos_token_id, self.forbidden)
        return scores

    def _advance(self, last_tokens: list[int]) -> None:
        for row, matcher in enumerate(self.matchers):
            if matcher is None or not self._live[row] or matcher.is_terminated():
                continue
            if not matcher.accept_token(last_tokens[row]):
                self._live[row] = False


def control_token_mask(tokenizer: Any, vocab_size: int, keep: Sequence[int]) -> torch.Tensor:
    """Tokens whose text holds a raw control character (U+0000-U+001F), except `keep` (EOS).

    JSON forbids those characters inside strings, and compact JSON (no free whitespace, as
    compiled here) has no use for them outside strings. xgrammar 0.2.8 nevertheless allows them
    in strings that have a maxLength (its bounded-string rule is `[^"\\\r\n]{0,n}`), so a weak
    model could write e.g. a raw BEL into a string and produce invalid JSON. Masking these
    tokens for constrained rows closes that hole without changing any valid output.
    """
    forbidden = torch.zeros(vocab_size, dtype=torch.bool)
    special = set(getattr(tokenizer, "all_special_ids", []))
    # One batch_decode call: a 150k vocabulary token by token would take seconds.
    texts = tokenizer.batch_decode([[i] for i in range(min(vocab_size, len(tokenizer)))])
    for token_id, text in enumerate(texts):
        # Special tokens are the grammar's business (xgrammar never allows them).
        if token_id not in special and any(ord(ch) < 0x20 for ch in text):
            forbidden[token_id] = True
    forbidden[list(keep)] = False
    return forbidden


def stop_window(stops: Sequence[str]) -> int:
    """Tokens to decode to spot a stop string: one of n characters spans at most n tokens, and a
    few more cover tokens that decode to partial UTF-8 bytes."""
    return max((len(s) for s in stops), default=0) + 8


def stop_reached(tokenizer: Any, tail: list[int], stops: Sequence[str]) -> bool:
    """Whether the decoded tail of a row's tokens holds one of its stop strings."""
    text = tokenizer.decode(tail, skip_special_tokens=True)
    return any(stop in text for stop in stops)


@dataclass
class RowStopper(StoppingCriteria):
    """Marks a row finished at its own max_tokens or once its text contains a stop string.

    EOS is left to transformers' own criterion. `stopped_at[row]` records the number of tokens
    the row had when a stop string appeared (None otherwise).
    """

    max_tokens: Sequence[int]
    stops: Sequence[tuple[str, ...]]
    prompt_len: int
    tokenizer: Any
    stopped_at: list[int | None] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.stopped_at = [None] * len(self.max_tokens)
        self._tail = [stop_window(stops) for stops in self.stops]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_len
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row, limit in enumerate(self.max_tokens):
            if generated >= limit:
                done[row] = True
            elif self.stops[row] and self.stopped_at[row] is None:
                tail = input_ids[row, -min(generated, self._tail[row]) :].tolist()
                if stop_reached(self.tokenizer, tail, self.stops[row]):
                    self.stopped_at[row] = generated
            if self.stopped_at[row] is not None:
                done[row] = True
        return done


def ngram_penalty(tokens: Sequence[int], penalties: Sequence[tuple[int, float]]) -> dict[int, float]:
    """token -> what to subtract from its logit so as not to repeat n-grams of `tokens` (the
    tokens generated so far), for each (n, penalty): every n-gram of `tokens` whose first n - 1
    tokens are the last n - 1 of `tokens` penalises its last token by penalty x its count.

        tokens 5 6 7 5 6, n = 3: the 3-grams are (5 6 7), (6 7 5), (7 5 6); only (5 6 7) starts
        with the last two tokens (5 6), so token 7 loses the penalty once.

    n = 1 is a frequency penalty (every token so far, by its count). The SELF-ALIGN reference
    (llama_dromedary/generation.py) uses 3-gram 1.0 and 4-gram 2.0 for its verbose answers."""
    out: dict[int, float] = {}
    length = len(tokens)
    for n, penalty in penalties:
        if penalty <= 0 or length < n:
            continue
        prefix = tuple(tokens[length - n + 1 :]) if n > 1 else ()
        for start in range(length - n + 1):
            if tuple(tokens[start : start + n - 1]) == prefix:
                last = tokens[start + n - 1]
                out[last] = out.get(last, 0.0) + penalty
    return out


def adjust_row(scores: torch.Tensor, row: int, tokens: Sequence[int], logit_bias: Sequence[tuple[int, float]],
               ngram_penalties: Sequence[tuple[int, float]]) -> None:
    """Add a row's logit bias and subtract its n-gram penalties, in place, in `scores[row]`."""
    changes: dict[int, float] = dict(logit_bias)
    for token, penalty in ngram_penalty(tokens, ngram_penalties).items():
        changes[token] = changes.get(token, 0.0) - penalty
    if changes:
        ids = torch.tensor(list(changes), dtype=torch.long, device=scores.device)
        scores[row, ids] += torch.tensor(list(changes.values()), dtype=scores.dtype, device=scores.device)


@dataclass
class RowAdjuster(LogitsProcessor):
    """`adjust_row` for every row of a `generate` call (the engine's fallback path)."""

    logit_biases: Sequence[tuple[tuple[int, float], ...]]
    ngram_penalties: Sequence[tuple[tuple[int, float], ...]]
    prompt_len: int

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(scores.shape[0]):
            generated = input_ids[row, self.prompt_len :].tolist()
            adjust_row(scores, row, generated, self.logit_biases[row], self.ngram_penalties[row])
        return scores
