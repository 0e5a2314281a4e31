"""The bodies the server answers with, in OpenAI's shapes: chat completions (whole or as
server-sent events), prompt-scoring completions, errors."""

from __future__ import annotations

import json
import re
from typing import Any, AsyncIterator, Callable, Optional

from selfalign.llm.errors import ModelError
from selfalign.llm.types import Completion, PromptLogprobs, TokenLogprob

from .schemas import CompletionRequest

Extra = Optional[dict[str, Any]]


def completion_choice(index: int, prompt: Any, result: PromptLogprobs, body: CompletionRequest) -> dict[str, Any]:
    """One prompt's choice: with `echo` its tokens (and text) first, then the greedy next token
    when max_tokens is 1; `logprobs` as OpenAI's legacy completions give them."""
    generated = [result.next] if body.max_tokens == 1 else []
    shown = [*result.tokens, *generated] if body.echo else generated
    echoed = (prompt if isinstance(prompt, str) else "".join(t.text for t in result.tokens)) if body.echo else ""
    top_k = body.top_k()
    return {
        "index": index,
        "text": echoed + "".join(t.text for t in generated),
        "finish_reason": "length",
        "logprobs": None if top_k is None else logprobs_body(shown),
    }


async def completions_json(
    head: dict[str, Any], prompts: list[Any], results: list[PromptLogprobs], body: CompletionRequest
) -> AsyncIterator[str]:
    """A /v1/completions body as JSON text, one choice at a time."""
    yield json.dumps(head)[:-1] + ', "choices": ['
    for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
        yield ("," if i else "") + json.dumps(completion_choice(i, prompt, result, body))
    prompt_tokens = sum(len(r.tokens) for r in results)
    generated = body.max_tokens * len(results)
    totals = {"prompt_tokens": prompt_tokens, "completion_tokens": generated, "total_tokens": prompt_tokens + generated}
    yield '], "usage": ' + json.dumps(totals) + "}"


def logprobs_body(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's legacy `logprobs`: tokens, their log-probabilities, the top tokens at each
    position ({text: logprob}, most likely first; None where nothing precedes), text offsets."""
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [None if t.logprob is None else _top_dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def _top_dict(top: tuple[tuple[str, float], ...]) -> dict[str, float]:
    """Tokens that decode to the same text keep the higher log-probability (the first)."""
    out: dict[str, float] = {}
    for text, logprob in top:
        out.setdefault(text, logprob)
    return out


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
    parts: AsyncIterator[str | Completion],
    extra: Extra,
    include_usage: bool,
    failure_body: Callable[[Exception], dict[str, Any]],
) -> AsyncIterator[str]:
    """The answer as server-sent `chat.completion.chunk` events: the role, each piece of text as
    `parts` gives it, what the completion that ends `parts` holds beyond them, the finish reason
    (with `selfalign` extra), usage if asked for, then `[DONE]`. A failure ends the stream with
    `failure_body`'s error event, as OpenAI's streams report one."""

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def event(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body)}\n\n"

    yield event(chunk({"role": "assistant", "content": ""}, None))
    sent: list[str] = []
    try:
        async for part in parts:
            if isinstance(part, str):
                sent.append(part)
                yield event(chunk({"content": part}, None))
            else:
                completion, text = part, "".join(sent)
                if not completion.text.startswith(text):  # the pieces only hold text that stays (text_stream.py)
                    raise ModelError("the streamed text is not the start of the answer's text")
                if rest := completion.text[len(text) :]:
                    yield event(chunk({"content": rest}, None))
                break
        else:
            raise ModelError("the answer ended without a completion")
    except Exception as exc:  # noqa: BLE001 (the client is told in the stream, the log gets the details)
        yield event(failure_body(exc))
        return
    last = chunk({}, completion.finish_reason)
    if extra is not None:
        last["selfalign"] = extra
    yield event(last)
    if include_usage:
        yield event({**chunk({}, None), "choices": [], "usage": usage(completion)})
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
    return {"error": {"message": _public(message), "type": kind, "param": param, "code": None}}


# Source files of the server and its libraries: where a message was made is no client's business.
_SOURCE_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.+-]+)+\.(?:py|pyx|cc|cpp|cxx|c|h|hpp|so)(?::\d+)?")


def _public(message: str) -> str:
    """A message fit for a client: no source paths, valid UTF-8 (no lone surrogates)."""
    message = _SOURCE_PATH.sub("<source>", message)
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_message(errors: Any) -> tuple[str, str | None]:
    """pydantic errors as one line, `messages.0.role: Input should be ...; ...`, and the first
    field's name."""
    parts, param = [], None
    for err in list(errors)[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc)
        param = param or where or None
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request", param
