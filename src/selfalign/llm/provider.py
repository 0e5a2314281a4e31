"""What every provider implements. Retries, caching, concurrency and schema validation are not
the provider's job: they live once, in `selfalign.llm.model.Model`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import ChatRequest, Completion, TextRequest


@runtime_checkable
class Provider(Protocol):
    #: Stable identity of the model, part of every cache key (e.g. "hf:/models/qwen").
    name: str
    #: True when the provider enforces `request.json_schema` during decoding.
    constrained: bool

    async def complete(self, request: ChatRequest) -> Completion:
        """Answer one request. Raise TransientError for failures worth retrying."""
        ...

    async def close(self) -> None:
        """Release engines, threads and connections."""
        ...


@runtime_checkable
class TextProvider(Provider, Protocol):
    """A provider that also completes raw text (no chat template): hf:, vllm:, openai: through
    /v1/completions, scripted:. `Model.text` calls it."""

    async def complete_text(self, request: TextRequest) -> Completion:
        """Continue `request.prompt` as it is. Raise TransientError for failures worth retrying."""
        ...
