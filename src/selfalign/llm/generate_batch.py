"""The engine's fallback for models whose cache our decode loop cannot slice (sliding windows,
linear attention...): one `model.generate` call per batch, with the same per-row settings as
processors (grammar, seeded sampling) and a per-row stopping criterion."""

from __future__ import annotations

from typing import Any, Callable

import torch

from .batch import Row, left_pad, read_completion
from .decoding import GrammarProcessor, RowAdjuster, RowSampler, RowStopper
from .types import Completion


def generate_batch(
    model: Any,
    tokenizer: Any,
    rows: list[Row],
    *,
    eos_token_ids: list[int],
    pad_token_id: int,
    forbidden_in_json: Callable[[int, torch.device], torch.Tensor],
) -> list[Completion]:
    """Every row's completion from one `generate` call (run it under the engine's forward mode).
    `forbidden_in_json(vocab_size, device)`: the tokens no constrained row may take."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    device = next(model.parameters()).device
    input_ids, attention_mask = left_pad([r.prompt_ids for r in rows], pad_token_id, device)
    prompt_len = input_ids.shape[1]
    processors = LogitsProcessorList()
    if any(r.logit_bias or r.ngram_penalties for r in rows):  # first: the grammar masks after it
        processors.append(RowAdjuster([r.logit_bias for r in rows], [r.ngram_penalties for r in rows], prompt_len))
    if any(r.matcher is not None for r in rows):
        forbidden = forbidden_in_json(model.get_output_embeddings().weight.shape[0], device)
        processors.append(GrammarProcessor([r.matcher for r in rows], eos_token_ids[0], prompt_len, forbidden))
    if any(r.temperature > 0 for r in rows):  # after the grammar: masked tokens stay -inf
        processors.append(
            RowSampler([r.temperature for r in rows], [r.top_p for r in rows], [r.seed for r in rows], prompt_len)
        )
    stopper = RowStopper([r.max_tokens for r in rows], [r.stop for r in rows], prompt_len, tokenizer)
    # A fresh config: the checkpoint's own sampling defaults (top_k, repetition penalty...)
    # would apply to every row alike and break per-row reproducibility; greedy + processors.
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max(r.max_tokens for r in rows),
        eos_token_id=eos_token_ids,
        pad_token_id=pad_token_id,
    )
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=config,
        logits_processor=processors,
        stopping_criteria=StoppingCriteriaList([stopper]),
    )
    new_tokens = output[:, prompt_len:].tolist()
    return [
        read_completion(tokenizer, eos_token_ids, row, tokens, stopped_at)
        for row, tokens, stopped_at in zip(rows, new_tokens, stopper.stopped_at, strict=True)
    ]
