"""An OpenAI-compatible chat endpoint in front of any selfalign model.

    POST /v1/chat/completions    messages, temperature, top_p, max_tokens / max_completion_tokens,
                                 stop, seed, stream, response_format (json_schema, json_object)
    POST /v1/completions         prompt scoring: prompts as text or token ids (one or a batch),
                                 echo, logprobs / top_logprobs, max_tokens 0 or 1 (greedy next token)
    GET  /v1/models              the one model served
    GET  /health                 200 when up, with the requests running and waiting

With `stream` an answerer that can (`ModelAnswerer` over an hf: or llamacpp: model) sends the
text while it is decoded, each piece once it is final (llm/text_stream.py); others send it whole
at the end.

A request names the served model (or the spec or path it was loaded from; another name is a
404, as OpenAI answers). At most `slots` requests are answered at once; one that finds no
free slot within `slot_wait_s` gets a 503 with Retry-After. A client that disconnects cancels
its request, so its generation stops. `max_tokens` is capped at `max_tokens_limit`. A body over
`max_body_bytes` is a 413 before it is read whole (`limits.py`). A model that fails is a 502
(503 when it may pass) with a request id: the failure's text, which may quote an upstream
server's address or key, goes (redacted) to this server's log only.

The app does not know how an answer is made: it calls an *answerer*,
`answer(messages, sampling, json_schema) -> (Completion, extra)`; one with `streams` true also has
`stream(messages, sampling, json_schema)`, an async iterator of text pieces then the completion.
The default one asks a `Model` (concurrency limit, retries, cache); another (e.g. `serve --matrix`, which answers each
request through a simulation) can plug in its own, and its `extra` dict is returned in the
response body under a `selfalign` field. `/v1/completions` calls a *prompt scorer*,
`score(prompts, top_k) -> [PromptLogprobs]` (the model's `prompt_logprobs`), where the served
model has one; lm-evaluation-harness's `local-completions` model evaluates through it.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at runtime.

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Optional

from pydantic import ValidationError

from selfalign.errors import UserError
from selfalign.llm.errors import ModelError, TransientError
from selfalign.llm.extras import require
from selfalign.llm.model import Model
from selfalign.llm.provider import PromptScoringProvider, StreamingProvider
from selfalign.llm.types import Completion, Message, PromptLogprobs, Sampling
from selfalign.redact import redact

from .limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from .responses import Extra, completion_body, completions_json, error_body, stream_chunks, validation_message
from .schemas import ChatCompletionRequest, CompletionRequest
from .slots import Slots, until_disconnected

log = logging.getLogger(__name__)

#: answer(messages, sampling, json_schema) -> (completion, extra for the `selfalign` field or None)
Answerer = Callable[[tuple[Message, ...], Sampling, Optional[dict[str, Any]]], Awaitable[tuple[Completion, Extra]]]
#: score(prompts, top_k) -> each prompt's token log-probabilities and greedy next token
PromptScorer = Callable[[list[Any], int], Awaitable[list[PromptLogprobs]]]


class ModelAnswerer:
    """Answers each request with one call through the Model wrapper: its concurrency limit
    (which also keeps a batching provider fed), its retries on transient failures, its cache.
    A JSON schema goes to the provider; a provider that cannot constrain its decoding gets the
    schema as an instruction in the prompt, as `Model.chat` does. The text is returned as the
    model wrote it: like any OpenAI-compatible server, this one does not validate it.

    Where the provider streams (hf:, llamacpp:), `stream` gives the text while it is decoded."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.streams = isinstance(model.provider, StreamingProvider)

    async def __call__(self, messages: tuple[Message, ...], sampling: Sampling, json_schema: Extra) -> tuple[Completion, Extra]:
        completion, _cached = await self.model.complete(messages, sampling, json_schema)
        return completion, None

    async def stream(self, messages: tuple[Message, ...], sampling: Sampling, json_schema: Extra) -> AsyncIterator[str | Completion]:
        """The answer's text in pieces as each becomes final, then its completion."""
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        call = asyncio.ensure_future(self.model.complete(messages, sampling, json_schema, on_text=pieces.put_nowait))
        call.add_done_callback(lambda _: pieces.put_nowait(None))  # after every piece (engine.generate)
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            yield call.result()[0]
        finally:
            if not call.done():  # the client left: its generation stops
                call.cancel()
                await asyncio.wait({call})


def model_answerer(model: Model) -> ModelAnswerer:
    """The default answerer: one call through `model` per request (see ModelAnswerer)."""
    return ModelAnswerer(model)


def app_for_model(model: Model, served_name: str | None = None, **options: Any) -> Any:
    """The app serving `model` under `served_name` (also answering to the model's spec and the
    path it was loaded from); the model is closed when the server stops. `options` go to
    `create_app`."""
    name = served_name or model.name
    return create_app(
        model_answerer(model),
        name,
        aliases=options.pop("aliases", spec_aliases(model.name)),
        default_sampling=model.default_sampling,
        on_shutdown=options.pop("on_shutdown", model.close),
        score_prompts=options.pop("score_prompts", prompt_scorer(model)),
        **options,
    )


def prompt_scorer(model: Model) -> PromptScorer | None:
    """The model's prompt scoring for /v1/completions, where its provider has it (hf:)."""
    return model.prompt_logprobs if isinstance(model.provider, PromptScoringProvider) else None


def spec_aliases(spec: str) -> list[str]:
    """The names a model loaded from `spec` also answers to: the spec and its path."""
    return [spec, spec.split(":", 1)[1]] if ":" in spec else [spec]


def create_app(
    answer: Answerer,
    model_name: str,
    *,
    aliases: Iterable[str] = (),
    default_sampling: Sampling | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    max_tokens_limit: int | None = None,
    slots: int = 64,
    slot_wait_s: float = 30.0,
    score_prompts: PromptScorer | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """A FastAPI app that answers OpenAI chat requests with `answer`.

    Settings a request leaves out come from `default_sampling` (Sampling() when None): note that
    its temperature (0.7) and max_tokens (512) differ from OpenAI's defaults. Request bodies
    over `max_body_bytes` are refused with 413 before they are read whole.
    """
    fastapi = require("fastapi", "serve")
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    class HeldStream(StreamingResponse):  # type: ignore[misc, valid-type]
        """Server-sent events that let go of what `held` holds (the slot, the answer's generation)
        when the response ends, however it ends: sent whole, or cut by a client that hangs up
        before or during its chunks."""

        def __init__(self, chunks: AsyncIterator[str], held: contextlib.AsyncExitStack) -> None:
            super().__init__(chunks, media_type="text/event-stream")
            self.held = held

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                await self.held.aclose()

    defaults = default_sampling or Sampling()
    created = int(time.time())
    names = {model_name, *aliases}
    queue = Slots(slots, slot_wait_s)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    app = fastapi.FastAPI(title="selfalign serve", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)

    def error(status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None) -> Any:
        return JSONResponse(status_code=status, content=error_body(status, message, param), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Any, exc: RequestValidationError) -> Any:
        message, param = validation_message(exc.errors())
        return error(400, message, param)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Any, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "running": queue.running, "waiting": queue.waiting, "slots": queue.size}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "selfalign"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        if body.model and body.model not in names:
            return error(404, f"The model {body.model!r} does not exist; this server serves {model_name!r}", "model")
        try:
            sampling = body.to_sampling(defaults, max_tokens_limit)
        except ValidationError as exc:
            message, param = validation_message(exc.errors())
            return error(400, message, param)
        if body.stream and getattr(answer, "streams", False):
            return await stream_in_slot(request, body, sampling)
        outcome = await run_in_slot(request, answer(body.to_messages(), sampling, body.to_json_schema()))
        if isinstance(outcome, JSONResponse):
            return outcome
        if outcome is None:  # the client is gone; nobody reads an answer
            return error(499, "client closed the request")
        completion, extra = outcome
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        now = int(time.time())
        if body.stream:  # an answerer that does not stream: the whole answer in one piece
            chunks = stream_chunks(completion_id, now, model_name, _one(completion), extra, _usage_asked(body), failure_body)
            return StreamingResponse(chunks, media_type="text/event-stream")
        return completion_body(completion_id, now, model_name, completion, extra)

    async def stream_in_slot(request: Any, body: ChatCompletionRequest, sampling: Sampling) -> Any:
        """The answer streamed while it is decoded, holding a slot until the stream ends. What
        fails before the first piece of text gets its status code (400, 502, 503); what fails
        after it ends the stream with an error event."""
        held = contextlib.AsyncExitStack()
        if not await held.enter_async_context(queue.take()):
            await held.aclose()
            return busy()
        parts = answer.stream(body.to_messages(), sampling, body.to_json_schema())  # type: ignore[attr-defined]
        held.push_async_callback(parts.aclose)
        first = await answered(request, anext(parts))
        if first is None or isinstance(first, JSONResponse):
            await held.aclose()
            return first if first is not None else error(499, "client closed the request")
        chunks = stream_chunks(
            f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model_name, _chain(first, parts), None, _usage_asked(body), failure_body
        )
        return HeldStream(chunks, held)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        if body.model and body.model not in names:
            return error(404, f"The model {body.model!r} does not exist; this server serves {model_name!r}", "model")
        if score_prompts is None:
            return error(400, f"{model_name} cannot score prompts (no prompt log-probabilities); /v1/completions needs an hf: model")
        prompts = body.prompts()
        outcome = await run_in_slot(request, score_prompts(prompts, body.top_k() or 0))
        if isinstance(outcome, JSONResponse):
            return outcome
        if outcome is None:
            return error(499, "client closed the request")
        # One choice at a time: a batch of long echoed prompts is never held whole as JSON.
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": model_name}
        return StreamingResponse(completions_json(head, prompts, outcome, body), media_type="application/json")

    async def run_in_slot(request: Any, work: Awaitable[Any]) -> Any:
        """The result of `work` run in a free slot; an error response (503 when no slot frees in
        time, 400 for what the model refuses, 502/503 when it fails, 500 for a bug); None when the
        client left."""
        async with queue.take() as admitted:
            if not admitted:
                if asyncio.iscoroutine(work):
                    work.close()
                return busy()
            return await answered(request, work)

    def busy() -> Any:
        retry = str(max(1, round(slot_wait_s)))
        message = f"the server is busy ({queue.running} requests running, {queue.waiting} waiting); retry later"
        return error(503, message, headers={"Retry-After": retry})

    async def answered(request: Any, work: Awaitable[Any]) -> Any:
        """`work`'s result; an error response for what the model refuses or fails; None when the
        client left (`work` is then cancelled)."""
        try:
            return await until_disconnected(request, work)
        except UserError as exc:  # e.g. an option this answerer does not support, a prompt too long
            return error(400, redact(str(exc)))
        except Exception as exc:  # noqa: BLE001 (a failed model or an answerer's bug must not kill the server)
            return failed(exc)

    def failed(exc: Exception) -> Any:
        status, message = failure(exc)
        retry = {"Retry-After": str(max(1, round(slot_wait_s)))} if status == 503 else None
        return error(status, message, headers=retry)

    def failure_body(exc: Exception) -> dict[str, Any]:
        """The error event that ends a stream the model failed in."""
        return error_body(*failure(exc))

    def failure(exc: Exception) -> tuple[int, str]:
        """The model failed: the client gets a request id, never the failure's text (an upstream
        server's error body, its URL, a key it quoted); the server's log gets the details, redacted."""
        request_id = f"req-{uuid.uuid4().hex[:16]}"
        transient = isinstance(exc, TransientError) or isinstance(exc.__cause__, TransientError)
        if isinstance(exc, ModelError):
            log.warning("request %s: the model failed%s: %s", request_id, " (transient)" if transient else "", redact(str(exc)))
        else:
            log.error("request %s: the answer failed: %s", request_id, redact(f"{type(exc).__name__}: {exc}"), exc_info=exc)
        if transient:
            return 503, f"the model is unavailable for now; retry later (request {request_id})"
        if isinstance(exc, ModelError):
            return 502, f"the model failed to answer (request {request_id}); the server's log has the details"
        return 500, f"internal error (request {request_id}); the server's log has the details"

    return app


def _usage_asked(body: ChatCompletionRequest) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


async def _one(completion: Completion) -> AsyncIterator[Completion]:
    yield completion


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for part in rest:
        yield part
