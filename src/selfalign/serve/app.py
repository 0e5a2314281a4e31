"""An OpenAI-compatible chat endpoint in front of any selfalign model.

    POST /v1/chat/completions    messages, temperature, top_p, max_tokens / max_completion_tokens,
                                 stop, seed, stream, response_format (json_schema, json_object)
    GET  /v1/models              the one model served
    GET  /health                 200 when up

The app does not know how an answer is made: it calls an *answerer*,
`answer(messages, sampling, json_schema) -> (Completion, extra)`. The default one asks a
`Model` (concurrency limit, retries, cache); another (e.g. `serve --matrix`, which answers each
request through a simulation) can plug in its own, and its `extra` dict is returned in the
response body under a `selfalign` field.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at runtime.

import contextlib
import json
import logging
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from pydantic import ValidationError

from selfalign.errors import UserError
from selfalign.llm.errors import ModelError, TransientError
from selfalign.llm.extras import require
from selfalign.llm.model import Model
from selfalign.llm.types import Completion, Message, Sampling

from .schemas import ChatCompletionRequest

log = logging.getLogger(__name__)

Extra = Optional[dict[str, Any]]
#: answer(messages, sampling, json_schema) -> (completion, extra for the `selfalign` field or None)
Answerer = Callable[[tuple[Message, ...], Sampling, Optional[dict[str, Any]]], Awaitable[tuple[Completion, Extra]]]


def model_answerer(model: Model) -> Answerer:
    """Answer each request with one call through the Model wrapper: its concurrency limit
    (which also keeps a batching provider fed), its retries on transient failures, its cache.
    A JSON schema goes to the provider; a provider that cannot constrain its decoding gets the
    schema as an instruction in the prompt, as `Model.chat` does. The text is returned as the
    model wrote it: like any OpenAI-compatible server, this one does not validate it."""

    async def answer(messages: tuple[Message, ...], sampling: Sampling, json_schema: Extra) -> tuple[Completion, Extra]:
        completion, _cached = await model.complete(messages, sampling, json_schema)
        return completion, None

    return answer


def app_for_model(model: Model, served_name: str | None = None) -> Any:
    """The app serving `model` under `served_name`; the model is closed when the server stops."""
    return create_app(
        model_answerer(model),
        served_name or model.name,
        default_sampling=model.default_sampling,
        on_shutdown=model.close,
    )


def create_app(
    answer: Answerer,
    model_name: str,
    *,
    default_sampling: Sampling | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """A FastAPI app that answers OpenAI chat requests with `answer`.

    Settings a request leaves out come from `default_sampling` (Sampling() when None): note that
    its temperature (0.7) and max_tokens (512) differ from OpenAI's defaults.
    """
    fastapi = require("fastapi", "serve")
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    defaults = default_sampling or Sampling()
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    app = fastapi.FastAPI(title="selfalign serve", lifespan=lifespan)

    def error(status: int, message: str, param: str | None = None) -> Any:
        return JSONResponse(status_code=status, content=error_body(status, message, param))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Any, exc: RequestValidationError) -> Any:
        message, param = validation_message(exc.errors())
        return error(400, message, param)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Any, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "selfalign"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        try:
            sampling = body.to_sampling(defaults)
        except ValidationError as exc:
            message, param = validation_message(exc.errors())
            return error(400, message, param)
        try:
            completion, extra = await answer(body.to_messages(), sampling, body.to_json_schema())
        except UserError as exc:  # e.g. an option this answerer does not support
            return error(400, str(exc))
        except TransientError as exc:
            log.warning("answer failed (transient): %s", exc)
            return error(503, str(exc))
        except ModelError as exc:
            # A Model that gave up retrying a transient failure: the client may try again later.
            status = 503 if isinstance(exc.__cause__, TransientError) else 500
            log.warning("answer failed: %s", exc)
            return error(status, str(exc))
        except Exception as exc:  # an answerer's bug must not kill the server
            log.exception("answer failed")
            return error(500, f"{type(exc).__name__}: {exc}")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        now = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = stream_chunks(completion_id, now, model_name, completion, extra, include_usage)
            return StreamingResponse(chunks, media_type="text/event-stream")
        return completion_body(completion_id, now, model_name, completion, extra)

    return app


def completion_body(
    completion_id: str, created: int, model_name: str, completion: Completion, extra: Extra
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(completion),
    }
    if extra is not None:
        body["selfalign"] = extra
    return body


async def stream_chunks(
    completion_id: str,
    created: int,
    model_name: str,
    completion: Completion,
    extra: Extra,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The finished answer as server-sent `chat.completion.chunk` events: the role, the whole
    text, the finish reason (with `selfalign` extra), usage if asked for, then `[DONE]`."""

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    events = [chunk({"role": "assistant", "content": ""}, None)]
    if completion.text:
        events.append(chunk({"content": completion.text}, None))
    last = chunk({}, completion.finish_reason)
    if extra is not None:
        last["selfalign"] = extra
    events.append(last)
    if include_usage:
        events.append({**chunk({}, None), "choices": [], "usage": usage(completion)})
    for event in events:
        yield f"data: {json.dumps(event)}\n\n"
    yield "data: [DONE]\n\n"


def usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which its clients turn into BadRequestError etc. with this message."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def validation_message(errors: Any) -> tuple[str, str | None]:
    """pydantic errors as one line, `messages.0.role: Input should be ...; ...`, and the first
    field's name."""
    parts, param = [], None
    for err in list(errors)[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc)
        param = param or where or None
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request", param
