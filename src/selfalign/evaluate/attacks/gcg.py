"""GCG, Greedy Coordinate Gradient (Zou et al., 2023, arXiv 2307.15043): an adversarial suffix
appended to the request, optimised so that the model's answer starts with the behaviour's target
("Sure, here is ..."). Each step:

    1. the gradient of the target's loss with respect to the one-hot suffix tokens
       (the suffix embedded as one_hot @ E, E the input embedding matrix);
    2. for each suffix position the top-k tokens by -gradient (the largest first-order drop);
    3. `search_width` candidates, each the current suffix with one random position replaced by
       one of its top-k tokens;
    4. every candidate's loss in batches, with the chat template's text before the suffix
       computed once and kept as a KV cache (the prefix cache); the best candidate is the next
       suffix, and the best suffix seen is kept.

loss = mean over target tokens of -log p(target_t | prefix, suffix, template after, target_<t).

`hf:` models only: it reads the model's gradients. The `nanogcg` package was tried first: it pins
transformers<=4.47, and with ours (5.x) its prefix cache fails (it indexes the cache as the legacy
tuple format); without the cache it runs, but slower, and it needs scipy. So GCG is this module.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from selfalign.errors import UserError
from selfalign.llm.batch import cache_name

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions

SUFFIX_MARK = "\x00SUFFIX\x00"
EVAL_BATCH = 64  # candidates per forward pass


@dataclass
class GCGResult:
    ids: list[int]
    loss: float
    losses: list[float] = field(default_factory=list)  # each step's best candidate loss
    stopped_early: bool = False


INIT_CHARS = [".", ",", "!", "?", ";", ":", "(", ")", "[", "]", "{", "}", "@", "#", "$", "%", "&", "*", "w", "x", "y", "z"]  # nanoGCG utils


def token_gradients(embedding: torch.Tensor, suffix_ids: torch.Tensor, loss_of_embeds: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """d loss / d one_hot(suffix): shape (suffix length, vocabulary)."""
    one_hot = torch.zeros(len(suffix_ids), embedding.shape[0], dtype=embedding.dtype, device=embedding.device)
    one_hot[torch.arange(len(suffix_ids)), suffix_ids] = 1.0
    one_hot.requires_grad_(True)
    loss = loss_of_embeds((one_hot @ embedding).unsqueeze(0)).sum()
    (grad,) = torch.autograd.grad(loss, one_hot)
    return grad


def sample_candidates(suffix_ids: torch.Tensor, grad: torch.Tensor, *, search_width: int, topk: int,
                      allowed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`search_width` suffixes, each with one position replaced by one of its top-k tokens."""
    scores = (-grad).masked_fill(~allowed, float("-inf"))
    top = scores.topk(min(topk, int(allowed.sum())), dim=1).indices  # (positions, k)
    positions = torch.randint(len(suffix_ids), (search_width,), generator=generator).to(top.device)
    choices = torch.randint(top.shape[1], (search_width,), generator=generator).to(top.device)
    candidates = suffix_ids.repeat(search_width, 1)
    candidates[torch.arange(search_width), positions] = top[positions, choices]
    return candidates


class AttackBuffer:
    """nanoGCG's buffer: the `size` lowest-loss suffixes seen, sorted; each step starts from the
    best. Size 0 (nanoGCG's default) holds only the last step's best candidate, better or not."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: list[tuple[float, torch.Tensor]] = []

    def add(self, loss: float, ids: torch.Tensor) -> None:
        if self.size == 0:
            self.entries = [(loss, ids)]
            return
        if len(self.entries) < self.size:
            self.entries.append((loss, ids))
        else:
            self.entries[-1] = (loss, ids)
        self.entries.sort(key=lambda e: e[0])

    def offer(self, loss: float, ids: torch.Tensor) -> None:
        """A step's best candidate enters when the buffer keeps no history or it beats the worst."""
        if self.size == 0 or loss < self.entries[-1][0]:
            self.add(loss, ids)

    def best(self) -> torch.Tensor:
        return self.entries[0][1]


def optimise(embedding: torch.Tensor, init_ids: list[int] | list[list[int]], loss_of_embeds: Callable[[torch.Tensor], torch.Tensor], *,
             steps: int, search_width: int, topk: int, allowed: torch.Tensor, seed: int,
             keep: Callable[[torch.Tensor], torch.Tensor] | None = None, buffer_size: int = 0,
             stop: Callable[[], bool] | None = None) -> GCGResult:
    """Run GCG for up to `steps` steps, as nanoGCG does. `init_ids` is one suffix, or one per
    buffer entry; `loss_of_embeds` maps suffix embeddings (batch, length, dim) to per-row losses;
    `keep` filters candidates (rows of ids) that would not survive decoding and re-encoding;
    `stop()` true after a step ends the run early (the target was generated greedily). The
    result is the suffix of the step with the lowest loss (nanoGCG's best_string)."""
    generator = torch.Generator().manual_seed(seed)
    rows = init_ids if init_ids and isinstance(init_ids[0], list) else [init_ids]
    buffer = AttackBuffer(buffer_size)
    with torch.no_grad():
        start = torch.tensor(rows, device=embedding.device)
        for loss, ids in zip(loss_of_embeds(embedding[start]).tolist(), start):
            buffer.add(float(loss), ids)
    current = buffer.best()
    best = GCGResult(current.tolist(), buffer.entries[0][0])
    best_step_loss = float("inf")
    for _ in range(steps):
        grad = token_gradients(embedding, current, loss_of_embeds)
        candidates = sample_candidates(current, grad, search_width=search_width, topk=topk, allowed=allowed, generator=generator)
        if keep is not None:
            candidates = candidates[keep(candidates)]
        if len(candidates) == 0:
            best.losses.append(best.losses[-1] if best.losses else best.loss)
            continue
        with torch.no_grad():
            losses = torch.cat([loss_of_embeds(embedding[chunk]) for chunk in candidates.split(EVAL_BATCH)])
        i = int(losses.argmin())
        step_loss = float(losses[i])
        best.losses.append(step_loss)
        buffer.offer(step_loss, candidates[i])
        current = buffer.best()
        if step_loss < best_step_loss:
            best_step_loss = step_loss
            best.ids, best.loss = current.tolist(), float(buffer.entries[0][0])
        if stop is not None and stop():
            best.stopped_early = True
            break
    return best


def init_buffer_ids(tokenizer: Any, init: list[int], size: int, generator: torch.Generator) -> list[list[int]]:
    """nanoGCG's initial buffer: the initial suffix, then size - 1 suffixes of as many tokens
    drawn at random from its INIT_CHARS."""
    if size <= 1:
        return [init]
    chars = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in INIT_CHARS]
    drawn = torch.randint(0, len(chars), (size - 1, len(init)), generator=generator).tolist()
    return [init] + [[chars[j] for j in row] for row in drawn]


class SuffixObjective:
    """The target's loss for a suffix on a Hugging Face model, the template's text before the
    suffix computed once as a KV cache and shared by every candidate."""

    def __init__(self, model: Any, tokenizer: Any, request: str, target: str) -> None:
        from transformers import DynamicCache

        self.model, self.cache_type, self.cache_name = model, DynamicCache, cache_name(model)
        # nanoGCG appends the suffix to the request as it is: messages[-1]["content"] + "{optim_str}"
        text = tokenizer.apply_chat_template([{"role": "user", "content": f"{request}{SUFFIX_MARK}"}], add_generation_prompt=True, tokenize=False)
        before, after = text.split(SUFFIX_MARK)
        device = model.get_input_embeddings().weight.device
        ids = lambda t: torch.tensor(tokenizer(t, add_special_tokens=False)["input_ids"], device=device)  # noqa: E731
        self.before, self.after, self.target = ids(before), ids(after), ids(target)
        embed = model.get_input_embeddings()
        with torch.no_grad():
            self.after_embeds, self.target_embeds = embed(self.after), embed(self.target)
            cache = model(input_ids=self.before.unsqueeze(0), use_cache=True)[self.cache_name]
        self.prefix = [(layer.keys, layer.values) for layer in cache.layers]
        self.generated = False  # some candidate made the model write the whole target greedily

    def __call__(self, suffix_embeds: torch.Tensor) -> torch.Tensor:
        rows = suffix_embeds.shape[0]
        cache = self.cache_type(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.prefix],
                                config=self.model.config)
        embeds = torch.cat([suffix_embeds, self.after_embeds.expand(rows, -1, -1), self.target_embeds.expand(rows, -1, -1)], dim=1)
        logits = self.model(inputs_embeds=embeds.to(self.model.dtype), use_cache=True, **{self.cache_name: cache}).logits
        start = suffix_embeds.shape[1] + len(self.after) - 1  # the position whose next token is the target's first
        predicted = logits[:, start : start + len(self.target)].float()
        if bool((predicted.argmax(-1) == self.target).all(dim=-1).any()):
            self.generated = True
        return torch.nn.functional.cross_entropy(predicted.transpose(1, 2), self.target.expand(rows, -1), reduction="none").mean(dim=1)


def allowed_tokens(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """Tokens a suffix may hold: printable ASCII text, no special tokens (as GCG's reference does)."""
    allowed = torch.zeros(vocab_size, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    for i in range(min(vocab_size, len(tokenizer))):
        text = tokenizer.decode([i])
        allowed[i] = i not in special and bool(text.strip()) and text.isascii() and text.isprintable()
    return allowed


def retokenizes(tokenizer: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A filter of candidate suffixes whose text encodes back to the same tokens (else the model
    would see another suffix than the one optimised)."""
    def keep(candidates: torch.Tensor) -> torch.Tensor:
        texts = tokenizer.batch_decode(candidates)
        again = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return torch.tensor([a == c for a, c in zip(again, candidates.tolist())], dtype=torch.bool, device=candidates.device)
    return keep


class GCGAttack:
    name = "gcg"
    needs = ("hf",)
    harmful_only = True

    def __init__(self, options: AttackOptions) -> None:
        self.options = options
        self._locks: dict[int, threading.Lock] = {}
        self._allowed: dict[int, torch.Tensor] = {}

    def variants(self) -> list[str]:
        return [""]

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        provider = ctx.target.provider
        if getattr(provider, "model", None) is None or getattr(provider, "tokenizer", None) is None:
            raise UserError(f"gcg needs an hf: model; {provider.name} is not one")
        result = await asyncio.to_thread(self._optimise, provider, behavior, ctx.seed("gcg"))
        suffix = provider.tokenizer.decode(result.ids)
        messages = [{"role": "user", "content": f"{behavior.text}{suffix}"}]  # appended as nanoGCG appends it
        o = self.options
        details = {"suffix": suffix, "suffix_ids": result.ids, "loss": result.loss, "losses": result.losses, "target": behavior.target_text,
                   "steps_run": len(result.losses), "stopped_early": result.stopped_early,
                   "settings": {"steps": o.gcg_steps, "search_width": o.gcg_search_width, "topk": o.gcg_topk,
                                "buffer_size": o.gcg_buffer_size, "early_stop": o.gcg_early_stop, "suffix_tokens": o.gcg_suffix_tokens}}
        return Attempt(messages, await ctx.ask(messages), details=details)

    def _optimise(self, provider: Any, behavior: Behavior, seed: int) -> GCGResult:
        """One optimisation at a time per model (it is compute-bound); the model's weights need no
        gradients, only the suffix's one-hot does."""
        model, tokenizer, o = provider.model, provider.tokenizer, self.options
        with self._locks.setdefault(id(model), threading.Lock()):
            embedding = model.get_input_embeddings().weight.detach()
            if id(model) not in self._allowed:
                self._allowed[id(model)] = allowed_tokens(tokenizer, embedding.shape[0]).to(embedding.device)
            init = tokenizer(" ".join(["x"] * o.gcg_suffix_tokens), add_special_tokens=False)["input_ids"]
            objective = SuffixObjective(model, tokenizer, behavior.text, behavior.target_text)
            rows = init_buffer_ids(tokenizer, init, o.gcg_buffer_size, torch.Generator().manual_seed(seed + 1))
            return optimise(embedding, rows, objective, steps=o.gcg_steps, search_width=o.gcg_search_width, topk=o.gcg_topk,
                            allowed=self._allowed[id(model)], seed=seed, keep=retokenizes(tokenizer), buffer_size=o.gcg_buffer_size,
                            stop=(lambda: objective.generated) if o.gcg_early_stop else None)


FACTORIES = {"gcg": GCGAttack}
