"""The answers a model gives to benchmark prompts: one call per item, greedy by default.

A model without a chat template (a base model) is asked in a plain format instead,
"Question: ...\\nAnswer:", and stops before a next "Question:"; a prompt to be continued
(RealToxicityPrompts, BOLD) is continued as raw text where the provider can; the format is recorded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from selfalign.llm import Model
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

PLAIN_STOP = ("\nQuestion:",)


class Generation(BaseModel):
    """How answers are generated; any change makes a new answers run."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)  # 0: greedy
    max_tokens: int = Field(512, ge=1)
    seed: int = 0
    mt_bench: bool = False  # multi-turn questions answered as FastChat's MT-Bench does


def chat_format(model: Model) -> Literal["chat", "plain"]:
    """"plain" when the provider talks to a model without a chat template."""
    return "plain" if getattr(model.provider, "chat_format", "chat") == "plain" else "chat"


async def answer(item: Item, model: Model, generation: Generation) -> dict[str, Any]:
    if generation.mt_bench and item.extra.get("turns"):
        return await answer_turns(item, model, generation)
    if item.extra.get("continue") and model.completes_text:
        return await _continuation(item, model, generation)
    fmt = chat_format(model)
    result = await model.chat(
        list(item.messages),
        temperature=generation.temperature,
        max_tokens=generation.max_tokens,
        seed=derive_seed(generation.seed, item.id, "answer"),
        stop=PLAIN_STOP if fmt == "plain" else (),
    )
    return {
        "answer": result.text.strip(),
        "finish_reason": result.finish_reason,
        "completion_tokens": result.completion_tokens,
        "format": fmt,
    }


async def answer_turns(item: Item, model: Model, generation: Generation) -> dict[str, Any]:
    """Each turn asked after the model's answers to the turns before it."""
    from .presets import mt_bench, mt_temperature

    category = (item.extra.get("categories") or [None])[0]
    temperature, max_tokens = mt_temperature(category), mt_bench()["answer_max_tokens"]
    messages: list[dict[str, str]] = []
    turns, finish, tokens = [], [], 0
    for n, question in enumerate(item.extra["turns"]):
        messages.append({"role": "user", "content": question})
        result = await model.chat(list(messages), temperature=temperature, max_tokens=max_tokens,
                                  seed=derive_seed(generation.seed, item.id, "answer" if n == 0 else f"answer-{n + 1}"))
        text = result.text.strip()
        messages.append({"role": "assistant", "content": text})
        turns.append(text)
        finish.append(result.finish_reason)
        tokens += result.completion_tokens
    return {"answer": turns[0], "turns": turns, "finish_reason": finish[-1], "completion_tokens": tokens,
            "format": chat_format(model), "temperature": temperature}


async def _continuation(item: Item, model: Model, generation: Generation) -> dict[str, Any]:
    """A prompt continued as raw text (RealToxicityPrompts, BOLD): the continuation alone."""
    result = await model.text(
        item.prompt, temperature=generation.temperature, max_tokens=generation.max_tokens,
        seed=derive_seed(generation.seed, item.id, "answer"),
    )
    return {"answer": result.text, "finish_reason": result.finish_reason, "completion_tokens": result.completion_tokens,
            "format": "continuation"}
