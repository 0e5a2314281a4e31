"""Answers that become training targets: never cut off.

An answer (an initial answer, a draft, a revision) that stops at max_tokens
(finish_reason "length") is asked again once with twice the budget, under the same seed; cut
again, the item fails with that reason, because a truncated text must never be a training
target. Serving keeps the cut answer instead and reports "length", as any server does.
"""

from __future__ import annotations

from typing import Any

from selfalign.errors import ItemFailed
from selfalign.llm import Model
from selfalign.llm.types import ChatResult


async def whole_answer(
    model: Model, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, seed: int, what: str,
    keep_truncated: bool = False, option: str = "--max-tokens",
) -> ChatResult:
    """The model's answer, stripped and not empty, and not cut at max_tokens (see above).
    `option` is the command-line flag that sets this budget, named in the failure."""
    result = await _ask(model, messages, temperature, max_tokens, seed)
    if result.finish_reason == "length" and not keep_truncated:
        result = await _ask(model, messages, temperature, 2 * max_tokens, seed)
        if result.finish_reason == "length":
            raise ItemFailed(
                f"the {what} was cut at {2 * max_tokens} tokens (finish_reason 'length') after a retry with twice "
                f"the budget; raise {option}"
            )
    if not result.text.strip():
        raise ItemFailed(f"the {what} is empty")
    return result


async def _ask(model: Model, messages: list[dict[str, str]], temperature: float, max_tokens: int, seed: int) -> Any:
    result = await model.chat(messages, temperature=temperature, max_tokens=max_tokens, seed=seed)
    result.text = result.text.strip()
    return result
