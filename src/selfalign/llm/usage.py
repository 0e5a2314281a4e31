"""What the model layer knows of the item it is called for: usage counters (the runner opens one
per item, every model call adds to it) and how many times the item failed before (the runner
sets it; a retried item draws new seeds for the calls that failed it, see `Model`)."""

from __future__ import annotations

import contextvars
from dataclasses import asdict, dataclass


@dataclass
class Usage:
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, cached: bool) -> None:
        self.calls += 1
        self.cached_calls += int(cached)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def to_json(self) -> dict[str, int]:
        return asdict(self)


current_usage: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("current_usage", default=None)
current_retry: contextvars.ContextVar[int] = contextvars.ContextVar("current_retry", default=0)


def record_usage(prompt_tokens: int, completion_tokens: int, cached: bool) -> None:
    usage = current_usage.get()
    if usage is not None:
        usage.add(prompt_tokens, completion_tokens, cached)
