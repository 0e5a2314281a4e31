"""Reading and steering a transformers decoder through forward hooks: last-token residual
activations after every decoder layer, in batched forward passes; greedy generation with the
residual stream edited at every layer (directional ablation) or at one (activation addition).

Works with any `hf:` decoder whose blocks sit in one `torch.nn.ModuleList` of
`config.num_hidden_layers` modules (Llama, Qwen, Mistral, Gemma, GPT-2, ...), whose output is the
residual stream (a tensor, or a tuple whose first element it is).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from selfalign.errors import UserError
from selfalign.llm.batch import cache_name, plain_dynamic_cache


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The model's decoder blocks, in order."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise UserError(f"{type(model).__name__}: no list of {count} decoder layers found; the probe reads decoder models "
                    "whose blocks are one torch.nn.ModuleList (Llama, Qwen, Mistral, GPT-2 ...)")


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def encode_prompts(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each conversation under the chat template, with the generation prompt: the
    last token is the last one the model reads before it answers."""
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _left_padded(batch: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for k, ids in enumerate(batch):
        input_ids[k, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[k, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


MIN_SHARED_PREFIX = 4  # a shorter shared prefix (ChatML's bare turn header is 3 tokens) saves too little to cache


@torch.inference_mode()
def last_token_activations(model: Any, prompts: list[list[int]], pad_id: int, batch_size: int = 32) -> np.ndarray:
    """[prompt, layer, hidden] float32: the residual stream after each decoder layer at each
    prompt's last token, from batched forward passes (no generation).

    Two savings that change no figure (beyond float rounding): the prompts run sorted by length,
    so a batch pads little; and the tokens every prompt starts with (the chat template's system
    prompt and turn header: half of a short prompt's tokens) run once, their keys and values
    reused by every batch, which then reads only what differs (left-padded after the prefix).
    The prefix is cached where the model's cache is transformers' plain DynamicCache (the same
    check as the engine's decode loop); other models read every prompt whole."""
    layers = decoder_layers(model)
    device = next(model.parameters()).device
    prefix = shared_prefix(prompts)
    reuse = len(prefix) >= MIN_SHARED_PREFIX and plain_dynamic_cache(model, device)
    prefix_cache = _prefix_cache(model, prefix, device) if reuse else None
    cut = len(prefix) if prefix_cache is not None else 0
    captured: list[torch.Tensor | None] = [None] * len(layers)

    def keep(index: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            captured[index] = _hidden(output)[:, -1, :].float().cpu()
        return hook

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    rows = []
    try:
        for start in range(0, len(order), batch_size):
            batch = [prompts[i][cut:] for i in order[start : start + batch_size]]
            _forward(model, batch, pad_id, device, prefix_cache, cut)
            rows.append(torch.stack([c for c in captured if c is not None], dim=1))
    finally:
        for handle in handles:
            handle.remove()
    sorted_acts = torch.cat(rows).numpy()
    acts = np.empty_like(sorted_acts)
    acts[order] = sorted_acts
    return acts


def shared_prefix(prompts: list[list[int]]) -> list[int]:
    """The longest run of tokens every prompt starts with, leaving each prompt at least one token
    of its own (its last, whose activations are read)."""
    if not prompts:
        return []
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return first[:n]


def _prefix_cache(model: Any, prefix: list[int], device: torch.device) -> Any:
    """The keys and values of the shared prefix (one row), from one forward pass."""
    ids = torch.tensor([prefix], dtype=torch.long, device=device)
    return model(input_ids=ids, use_cache=True, **_one_logit(model))[cache_name(model)]


def _forward(model: Any, batch: list[list[int]], pad_id: int, device: torch.device, prefix_cache: Any, cut: int) -> None:
    """One left-padded forward pass over `batch`, each row continuing the cached prefix of `cut`
    tokens when there is one (the pads then sit between prefix and row, masked out)."""
    input_ids, mask = _left_padded(batch, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0) + cut
    if prefix_cache is None:
        model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False, **_one_logit(model))
        return
    cache = copy.deepcopy(prefix_cache)  # a forward pass appends to the cache it is given
    cache.batch_repeat_interleave(len(batch))
    mask = torch.cat([torch.ones((len(batch), cut), dtype=mask.dtype, device=device), mask], dim=1)
    model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **{cache_name(model): cache},
          **_one_logit(model))


def _one_logit(model: Any) -> dict[str, Any]:
    """Only the last position's logits, where the model can skip the others: the language-model
    head over every position would cost more than the layers of a small model."""
    import inspect

    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


@contextmanager
def steered(model: Any, direction: np.ndarray, *, mode: str, layer: int | None = None) -> Iterator[None]:
    """While inside: mode "ablate" projects the unit direction out of the residual stream at the
    input and the output of every decoder layer; mode "add" adds the direction to the output of
    decoder layer `layer` (at every position)."""
    layers = decoder_layers(model)
    param = next(model.parameters())
    r = torch.tensor(direction, dtype=torch.float32, device=param.device)
    handles = []
    if mode == "ablate":
        r_hat = r / r.norm()

        def project_out(hidden: torch.Tensor) -> torch.Tensor:
            h = hidden.float()
            return (h - (h @ r_hat)[..., None] * r_hat).to(hidden.dtype)

        def before(module: Any, args: Any, kwargs: Any) -> Any:
            if args:
                return (project_out(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": project_out(kwargs["hidden_states"])}

        for block in layers:
            handles.append(block.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(block.register_forward_hook(lambda m, a, out: _replace(out, project_out(_hidden(out)))))
    elif mode == "add":
        if layer is None:
            raise ValueError("activation addition needs the layer")
        handles.append(layers[layer].register_forward_hook(lambda m, a, out: _replace(out, (_hidden(out).float() + r).to(_hidden(out).dtype))))
    else:
        raise ValueError(f"unknown steering mode {mode!r}")
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def greedy_answers(model: Any, tokenizer: Any, prompts: list[list[int]], pad_id: int, max_new_tokens: int,
                   batch_size: int = 16) -> list[str]:
    """Greedy answers to the prompts, left-padded batches, through transformers' generate (so the
    hooks in place see every forward pass)."""
    device = next(model.parameters()).device
    answers = []
    for start in range(0, len(prompts), batch_size):
        input_ids, mask = _left_padded(prompts[start : start + batch_size], pad_id, device)
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_id)
        answers += tokenizer.batch_decode(out[:, input_ids.shape[1] :], skip_special_tokens=True)
    return answers
