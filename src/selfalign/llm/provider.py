"""What every provider implements. Retries, caching, concurrency and schema validation are not
the provider's job: they live once, in `selfalign.llm.model.Model`."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, PromptLogprobs, TextRequest


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


@runtime_checkable
class ScoringProvider(Provider, Protocol):
    """A provider that also scores continuations (log-likelihoods, lm-evaluation-harness's way):
    hf:, vllm:, openai: through /v1/completions with echo and logprobs. `Model.loglikelihood`
    calls it."""

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        """Each continuation's summed log-probability after the context, and whether it is greedy."""
        ...


@runtime_checkable
class PromptScoringProvider(Provider, Protocol):
    """A provider that gives every prompt token's log-probability (hf:); `selfalign serve`'s
    /v1/completions answers with it. `Model.prompt_logprobs` calls it."""

    async def prompt_logprobs(self, prompts: list[str | list[int]], top_k: int) -> list[PromptLogprobs]:
        """Each prompt's token log-probabilities, top tokens per position, greedy next token."""
        ...


@runtime_checkable
class StreamingProvider(Provider, Protocol):
    """A provider that tells a caller the answer's text while it is decoded (hf:, llamacpp:);
    `Model.complete(..., on_text=)` calls it, and `selfalign serve` streams that text."""

    async def stream(self, request: ChatRequest, on_text: Callable[[str], None] | None) -> Completion:
        """`complete`, calling `on_text` with each new piece of the text once it is final: the
        pieces joined start the completion's text. Raise TransientError for failures worth retrying."""
        ...
