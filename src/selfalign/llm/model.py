"""The one wrapper around every provider: concurrency limit, retries with backoff, call cache,
and structured output (schema in the request, validation, a bounded number of attempts; the
instruction and JSON reading it uses are in `structured.py`). Errors leave it with secrets
redacted (`selfalign.redact`)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from selfalign.errors import UserError
from selfalign.redact import redact, redact_exception

from .cache_keys import call_key, loglikelihood_key
from .errors import ModelError, SchemaError, TransientError
from .structured import json_schema_of, read_json, schema_instruction, schema_instruction_of, with_instruction
from .provider import PromptScoringProvider, Provider, ScoringProvider, StreamingProvider, TextProvider
from .types import (
    OPTIONAL_SAMPLING,
    CallStats,
    ChatRequest,
    ChatResult,
    Completion,
    Loglikelihood,
    LoglikelihoodRequest,
    Message,
    PromptLogprobs,
    Sampling,
    TextRequest,
    as_messages,
)
from .usage import current_retry, record_usage

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")


class CallCache(Protocol):
    """Where finished calls are kept (the run store implements it)."""

    def get_call(self, key: str) -> dict[str, Any] | None: ...

    def put_call(self, key: str, value: dict[str, Any]) -> None: ...


@dataclass
class RetryPolicy:
    max_retries: int = 5  # transient failures retried per call
    backoff_base: float = 0.5  # seconds; doubles each retry
    backoff_max: float = 30.0
    schema_attempts: int = 3  # generations tried before a SchemaError

    def delay(self, retry: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**retry))


class Model:
    """`await model.chat(messages, schema=Verdict)` -> ChatResult, for any provider.

    Every call goes through one semaphore (the concurrency limit), is looked up in the cache
    first, and is retried with backoff on TransientError. With a schema, the provider gets the
    JSON schema (constrained decoding where it supports it, an instruction in the prompt where
    it does not); the text is validated, and a failed validation is tried again with the next
    seed, up to `schema_attempts` times, then raises SchemaError.

    In an item that is being retried (`usage.current_retry` > 0), a cached answer that failed
    (cut at its token budget, or not valid under its schema) is not replayed: the call is made
    again with a seed drawn from the retry count, so a rerun can succeed where the run before
    did not, while the calls that went well replay from the cache.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        max_concurrency: int = 64,
        retry: RetryPolicy | None = None,
        cache: CallCache | None = None,
        sampling: Sampling | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.default_sampling = sampling or Sampling()
        self.stats = CallStats()
        self._limit = asyncio.Semaphore(max_concurrency)
        self._structured_known = False
        self._warned: set[str] = set()  # optional sampling fields the provider was said to ignore
        #: What the call cache knows the model by: its name, or where answers also depend on how
        #: it is loaded (an hf: model's weights in bfloat16), the provider's `cache_identity`.
        self._identity: str = getattr(provider, "cache_identity", None) or provider.name

    @property
    def name(self) -> str:
        return self.provider.name

    async def chat(
        self,
        messages: Any,
        *,
        schema: type[T] | None = None,
        sampling: Sampling | None = None,
        **overrides: Any,
    ) -> ChatResult:
        msgs = as_messages(messages)
        base = (sampling or self.default_sampling).with_overrides(**overrides)
        json_schema = json_schema_of(schema) if schema else None
        msgs = await self._prepare(msgs, json_schema, schema)
        attempts = self.retry.schema_attempts if schema else 1
        last_error = ""
        usable = _finished if schema is None else functools.partial(_valid_under, schema)
        for attempt in range(attempts):
            request = ChatRequest(msgs, _attempt_sampling(base, attempt), json_schema)
            completion, cached = await self._complete(request, usable)
            if schema is None:
                return _result(completion, None, cached, attempt + 1)
            try:
                parsed = schema.model_validate(read_json(completion.text))
                return _result(completion, parsed, cached, attempt + 1)
            except (ValueError, ValidationError) as exc:
                last_error = _short(exc, completion)
                log.debug("schema %s attempt %d failed: %s", schema.__name__, attempt + 1, last_error)
        self.stats.failures += 1
        raise SchemaError(f"no valid {schema.__name__} after {attempts} attempts; last: {last_error}")

    @property
    def completes_text(self) -> bool:
        """Whether the provider takes raw text prompts (`text`)."""
        return isinstance(self.provider, TextProvider)

    async def text(self, prompt: str, *, sampling: Sampling | None = None, **overrides: Any) -> ChatResult:
        """A raw text completion: `prompt` continued as it is, with no chat template (how a base
        model is prompted); stop strings in `stop=`. Cached, limited and retried as `chat` is."""
        if not self.completes_text:
            raise UserError(f"{self.name} does not complete raw text; use a chat prompt with this model")
        request = TextRequest(prompt, (sampling or self.default_sampling).with_overrides(**overrides))
        completion, cached = await self._complete(request, _finished)
        return _result(completion, None, cached, 1)

    async def complete(
        self,
        messages: Any,
        sampling: Sampling,
        json_schema: dict[str, Any] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[Completion, bool]:
        """One raw call (cache, concurrency limit, retries), its text not validated: what an
        OpenAI-compatible server does with a `response_format`. Returns (completion, cached).
        Where the provider streams (hf:, llamacpp:), `on_text` is told each piece of the text
        once it is final, each piece once even when the call is retried; the pieces start the
        completion's text (a cached answer tells nothing)."""
        msgs = await self._prepare(as_messages(messages), json_schema)
        return await self._complete(ChatRequest(msgs, sampling, json_schema), on_text=on_text)

    async def loglikelihood(self, context: str, continuations: Any) -> list[Loglikelihood]:
        """Each continuation's summed log-probability after `context` (plain text, no chat
        template) and whether greedy decoding writes it: one call, cached and retried like chat.
        Providers that can score implement `loglikelihood(LoglikelihoodRequest)`."""
        request = LoglikelihoodRequest(context, tuple(continuations))
        if not isinstance(self.provider, ScoringProvider):
            raise ModelError(f"{self.provider.name} cannot score continuations (log-likelihoods); use an hf:, vllm: or openai: model")
        score = self.provider.loglikelihood
        key = loglikelihood_key(self._identity, request)
        if self.cache is not None and (hit := self.cache.get_call(key)) is not None:
            self.stats.cached_calls += 1
            return [Loglikelihood(**r) for r in hit["loglikelihoods"]]
        async with self._limit:
            results = await self._with_retries(lambda: score(request))
        self.stats.calls += 1
        if self.cache is not None:
            self.cache.put_call(key, {"loglikelihoods": [r.to_json() for r in results]})
        return results

    async def prompt_logprobs(self, prompts: list[str | list[int]], top_k: int = 0) -> list[PromptLogprobs]:
        """Each prompt's token log-probabilities (text, or token ids), the `top_k` most likely
        tokens at each position and the greedy next token: what a server's /v1/completions with
        `echo` and `logprobs` returns. Through the concurrency limit and retries; not cached."""
        if not isinstance(self.provider, PromptScoringProvider):
            raise ModelError(f"{self.provider.name} cannot give prompt log-probabilities; serve an hf: model for /v1/completions")
        score = self.provider.prompt_logprobs
        async with self._limit:
            return await self._with_retries(lambda: score(prompts, top_k))

    async def _prepare(
        self, msgs: tuple[Message, ...], json_schema: dict[str, Any] | None, schema: type[BaseModel] | None = None
    ) -> tuple[Message, ...]:
        """A provider that cannot constrain its decoding is told the schema in the prompt."""
        if json_schema is None:
            return msgs
        if not self._structured_known:
            await self._find_structured_mode()
        if not self.provider.constrained:
            instruction = schema_instruction_of(schema) if schema else schema_instruction(json_schema)
            return with_instruction(msgs, instruction)
        return msgs

    async def _find_structured_mode(self) -> None:
        """A provider that finds out how its server takes a schema (openai:) does so once per run:
        the mode is kept in the run's cache, so a resumed run sends the same prompts."""
        find = getattr(self.provider, "find_structured_mode", None)
        if find is None or self._structured_known:
            self._structured_known = True  # nothing to find out
            return
        key = call_key(self._identity, None)
        remembered = self.cache.get_call(key) if self.cache is not None else None
        try:
            mode = await find(remembered.get("structured") if remembered else None)
        except ModelError as exc:  # the server's words may quote the key, as a call's errors may
            raise redact_exception(exc)
        if self.cache is not None and (remembered or {}).get("structured") != mode:
            self.cache.put_call(key, {"structured": mode})
        self._structured_known = True

    async def _complete(
        self,
        request: ChatRequest | TextRequest,
        usable: Callable[[Completion], bool] = lambda c: True,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[Completion, bool]:
        self._say_unsupported(request.sampling)
        key, hit = self._lookup(request)
        retry = current_retry.get()
        if hit is not None and retry and not usable(hit):  # it failed this item before: draw again
            request = _resampled(request, retry)
            key, hit = self._lookup(request)
        if hit is not None:
            self.stats.cached_calls += 1
            record_usage(hit.prompt_tokens, hit.completion_tokens, cached=True)
            return hit, True
        async with self._limit:
            completion = await self._with_retries(self._provider_call(request, on_text))
        self.stats.calls += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        record_usage(completion.prompt_tokens, completion.completion_tokens, cached=False)
        if key is not None:
            self.cache.put_call(key, completion.to_json())
        return completion, False

    def _provider_call(
        self, request: ChatRequest | TextRequest, on_text: Callable[[str], None] | None
    ) -> Callable[[], Awaitable[Completion]]:
        """The provider's method for the request, each call one attempt."""
        if isinstance(request, TextRequest):
            return functools.partial(self.provider.complete_text, request)  # type: ignore[attr-defined]
        if on_text is None or not isinstance(self.provider, StreamingProvider):
            return functools.partial(self.provider.complete, request)
        tellers = _told_once(on_text)
        return lambda: self.provider.stream(request, next(tellers))  # type: ignore[attr-defined]

    def _say_unsupported(self, sampling: Sampling) -> None:
        """Warn once per field when a call asks for a sampling field the provider ignores."""
        honoured = getattr(self.provider, "sampling_fields", frozenset())
        for field in OPTIONAL_SAMPLING:
            if getattr(sampling, field) is not None and field not in honoured and field not in self._warned:
                self._warned.add(field)
                log.warning("%s does not support %s: its calls are decoded without it", self.name, field)

    @property
    def context_length(self) -> int | None:
        """Tokens the model holds, prompt and answer together, where the provider knows it."""
        return getattr(self.provider, "context_length", None)

    def token_ids(self, text: str) -> list[int] | None:
        """`text` as the model's token ids (no special tokens), or None when the provider has no
        tokenizer here (a remote server): what a caller needs to set a `logit_bias`."""
        tokenize = getattr(self.provider, "tokenize", None)
        return list(tokenize(text)) if tokenize is not None else None

    def _lookup(self, request: ChatRequest | TextRequest) -> tuple[str | None, Completion | None]:
        """The request's cache key and its cached completion, if any."""
        if self.cache is None:  # no cache, no key: hashing the request costs as much as the rest of a call
            return None, None
        schema = request.json_schema if isinstance(request, ChatRequest) else None
        structured = getattr(self.provider, "structured", None) if schema is not None else None
        key = call_key(self._identity, request, structured)
        hit = self.cache.get_call(key)
        return key, Completion(**hit) if hit is not None else None

    async def _with_retries(self, call: Callable[[], Awaitable[R]]) -> R:
        """`call`'s result, retried on transient failures. Its errors leave here with secrets
        redacted (a server's error text may quote the API key): this is where a provider's
        errors enter the rest of the program, its logs, stores and reports."""
        for retry in range(self.retry.max_retries + 1):
            try:
                return await call()
            except TransientError as exc:
                if retry == self.retry.max_retries:
                    self.stats.failures += 1
                    raise redact_exception(
                        ModelError(f"{self.provider.name}: gave up after {retry + 1} tries: {exc}")
                    ) from redact_exception(exc)
                self.stats.retries += 1
                delay = self.retry.delay(retry)
                log.warning("%s; retry %d of %d in %.1fs", redact(_one_line(exc)), retry + 1, self.retry.max_retries, delay)
                await asyncio.sleep(delay)
            except ModelError as exc:
                raise redact_exception(exc)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.provider.close()


# A retry must not replay the same generation: the next seed, and sampling instead of greedy.
RETRY_TEMPERATURE = 0.7


def _attempt_sampling(base: Sampling, attempt: int) -> Sampling:
    if attempt == 0:
        return base
    return base.model_copy(
        update={
            "seed": (base.seed or 0) + attempt,
            "temperature": max(base.temperature, RETRY_TEMPERATURE),
        }
    )


def _told_once(on_text: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """One teller per attempt of a call, each passing on only the text beyond what the attempts
    before it passed on: a retried call tells its text from the start again."""
    sent = 0

    def teller() -> Callable[[str], None]:
        seen = 0

        def tell(piece: str) -> None:
            nonlocal seen, sent
            seen += len(piece)
            if seen > sent:
                on_text(piece[len(piece) - (seen - sent) :])
                sent = seen

        return tell

    while True:
        yield teller()


def _resampled(request: R, retry: int) -> R:
    """The request as the `retry`-th retry of its item sends it: a seed drawn from the retry
    count, and sampling instead of greedy decoding (greedy would give the same answer again)."""
    seed = int.from_bytes(hashlib.sha256(f"{request.sampling.seed}/retry/{retry}".encode()).digest()[:4], "big") >> 1
    sampling = request.sampling.model_copy(
        update={"seed": seed, "temperature": max(request.sampling.temperature, RETRY_TEMPERATURE)}
    )
    return dataclasses.replace(request, sampling=sampling)  # type: ignore[type-var]


def _finished(completion: Completion) -> bool:
    return completion.finish_reason != "length"


def _valid_under(schema: type[BaseModel], completion: Completion) -> bool:
    try:
        schema.model_validate(read_json(completion.text))
        return True
    except (ValueError, ValidationError):
        return False


def _one_line(exc: Exception, limit: int = 160) -> str:
    """A server's error page can be long: one line of it is enough on a console."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(exc: Exception, completion: Completion) -> str:
    reason = "output truncated at max_tokens; " if completion.finish_reason == "length" else ""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        detail = f"{where}: {first['msg']}" if where else first["msg"]
    else:
        detail = str(exc)
    return f"{reason}{detail} in {completion.text[:120]!r}"


def _result(completion: Completion, parsed: Any, cached: bool, attempts: int) -> ChatResult:
    return ChatResult(
        text=completion.text,
        parsed=parsed,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        finish_reason=completion.finish_reason,
        cached=cached,
        attempts=attempts,
    )
