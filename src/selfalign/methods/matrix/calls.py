"""How every step of a simulation talks to the model: one seed per call, the call kept for the
"simulation" export, and independent calls issued together.

A call's place in the record is taken when the call is *made* (in program order), not when it
finishes, so the record is the same whatever order concurrent calls complete in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from selfalign.llm import Model
from selfalign.llm.structured import json_schema_of
from selfalign.llm.types import ChatResult
from selfalign.methods.answers import whole_answer
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .config import MatrixConfig
from .record import SimCall

PROMPTS_DIR = Path(__file__).parent / "prompts"
T = TypeVar("T")


@dataclass
class Sim:
    """One item's simulation context."""

    model: Model
    config: MatrixConfig
    prompts: Prompts
    item: Item
    calls: list[SimCall | None] = field(default_factory=list)
    _slots: dict[str, int] = field(default_factory=dict)  # calls placed ahead of time, by key

    def render(self, template: str, **values: Any) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompts.render(template, **values)}]

    def ask(self, key: str, messages: list[dict[str, str]], schema: type[BaseModel]) -> Coroutine[Any, Any, Any]:
        """A structured call; its answer is the validated object (SchemaError when the model
        never complies, which fails the item with that reason)."""
        slot = self._slots.pop(key) if key in self._slots else self._reserve()
        return self._call(slot, key, messages, schema)

    async def answer(self, key: str, messages: list[dict[str, str]], max_tokens: int) -> ChatResult:
        """A free-text answer that is a training target (the initial and revised answers): never
        empty, never cut at max_tokens (methods.answers), not kept among the simulation calls."""
        return await whole_answer(
            self.model, messages, temperature=self.config.temperature, max_tokens=max_tokens,
            seed=derive_seed(self.config.seed, self.item.id, key), what=f"model's {key} answer",
            keep_truncated=self.config.keep_truncated,
            option="--revision-max-tokens" if key == "revision" else "--max-tokens",
        )

    async def batch(self, coros: list[Awaitable[T]]) -> list[T]:
        """Independent calls, issued together (or one at a time with config.sequential)."""
        if self.config.sequential or len(coros) <= 1:
            return [await c for c in coros]
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the rest of the batch
                tasks = [group.create_task(_as_coroutine(c)) for c in coros]
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None  # the item fails with that call's own reason
        return [t.result() for t in tasks]

    def kept_calls(self) -> list[SimCall]:
        return [c for c in self.calls if c is not None]

    def place(self, *keys: str) -> None:
        """Take the record's places for calls that a concurrent chain will make later (e.g. a
        reaction and then its verdict), so the order is the same as in a sequential run."""
        for key in keys:
            self._slots[key] = self._reserve()

    def _reserve(self) -> int:
        self.calls.append(None)
        return len(self.calls) - 1

    async def _call(self, slot: int, key: str, messages: list[dict[str, str]], schema: type[BaseModel]) -> Any:
        result = await self.model.chat(
            messages,
            schema=schema,
            temperature=self.config.temperature,
            max_tokens=self.config.json_max_tokens,
            seed=derive_seed(self.config.seed, self.item.id, key),
        )
        self.calls[slot] = SimCall(
            key=key, messages=messages, answer=result.parsed.model_dump_json(), json_schema=json_schema_of(schema)
        )
        return result.parsed


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
