"""What goes over the wire to an OpenAI-compatible server: request fields from our requests,
and our completions, log-likelihoods and errors from the server's answers (openai_compat.py
sends them)."""

from __future__ import annotations

from typing import Any

from .errors import ModelError, TransientError
from .types import Completion, Loglikelihood, Sampling

#: How a request carries its JSON schema, best first; `none` puts it into the prompt.
STRUCTURED_MODES = ("structured_outputs", "json_schema", "json_object", "none")


def sampling_params(s: Sampling) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}
    if s.stop:
        params["stop"] = list(s.stop)
    if s.seed is not None:
        params["seed"] = s.seed
    if s.logit_bias:  # the API's own field: token ids (as strings in JSON) to biases
        params["logit_bias"] = {str(token): bias for token, bias in s.logit_bias.items()}
    return params


def connection_limits(max_connections: int) -> Any:
    """Connection limits for the client's HTTP library (httpx2 in openai>=3, httpx before)."""
    try:
        import httpx2 as httpx_module
    except ImportError:
        import httpx as httpx_module
    return httpx_module.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def schema_params(schema: dict[str, Any], mode: str) -> dict[str, Any]:
    """The request fields that carry `schema` in structured-output `mode`."""
    if mode == "json_schema":
        named = {"name": _schema_name(schema), "schema": schema, "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": named}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "structured_outputs":  # vLLM; without this a small model may pad with whitespace forever
        return {"extra_body": {"structured_outputs": {"json": schema, "disable_any_whitespace": True}}}
    return {}


# Words with which servers say a request is invalid, whatever status they send it with
# (llama-cpp-python answers some invalid requests with a 500).
_INVALID_WORDS = ("invalid", "not supported", "unsupported", "validation error", "unrecognized", "extra inputs",
                  "extra_forbidden", "input should be", "not permitted", "unexpected keyword")


def status_error(name: str, exc: Any, mode: str = "none") -> ModelError:
    status = exc.status_code
    message = server_message(exc)
    if status in (400, 422) or (status >= 500 and any(w in message.lower() for w in _INVALID_WORDS)):
        return ModelError(f"{name}: the server refused the request (HTTP {status}: {message}); {_refusal_hint(message, mode)}")
    if status == 429 or status == 408 or status >= 500:
        return TransientError(f"{name}: HTTP {status}: {message}")
    return ModelError(f"{name}: HTTP {status}: {message}")


def _refusal_hint(message: str, mode: str) -> str:
    """What the server does not take, and what to do about it."""
    said = message.lower()
    if "max_tokens" in said or "context" in said or "too long" in said:
        return "the prompt and max_tokens do not fit the model's context: lower --max-tokens, or serve a longer context"
    if mode != "none":
        others = ", ".join(m for m in STRUCTURED_MODES if m != mode)
        return (
            f"it may not take structured output as {mode}: force another mode with "
            f"openai:MODEL@URL?structured=MODE ({others})"
        )
    for field in ("seed", "stop", "top_p", "temperature", "system"):
        if field in said:
            return f"it does not take `{field}` as this request sends it; see the server's documentation"
    return "it does not take this OpenAI chat request; see the server's message and its documentation"


def server_message(exc: Any) -> str:
    """The server's own words: `{"error": {"message": ...}}` (OpenAI, vLLM) or FastAPI's `detail`."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else str(value)
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


SCORING_SERVERS = (
    "log-likelihoods need a server that returns prompt log-probabilities from /v1/completions with echo and "
    "logprobs (vLLM, SGLang, llama.cpp's server, selfalign serve)"
)


def prompt_logprobs(name: str, choice: Any) -> tuple[list[float | None], list[dict[str, float] | None]]:
    """(token_logprobs, top_logprobs) of one echoed prompt, or a ModelError naming the limitation."""
    lp = getattr(choice, "logprobs", None)
    tokens = getattr(lp, "token_logprobs", None) if lp is not None else None
    if not tokens:
        raise ModelError(
            f"{name}: the server answered /v1/completions without prompt log-probabilities (it ignores echo or "
            f"logprobs), so it cannot score continuations; {SCORING_SERVERS}"
        )
    return list(tokens), list(getattr(lp, "top_logprobs", None) or [None] * len(tokens))


def continuation_loglikelihood(tokens: list[float | None], tops: list[Any], context_tokens: int) -> Loglikelihood:
    """The tokens after the context's (the last, generated one left out): their summed
    log-probability, and greedy when each equals the best of its position's top log-probabilities."""
    own, own_tops = tokens[context_tokens:-1], tops[context_tokens:-1]
    if not own or any(t is None for t in own):
        raise ModelError("the server returned no log-probability for a continuation token")
    greedy = all(bool(top) and t == max(top.values()) for t, top in zip(own, own_tops))
    return Loglikelihood(float(sum(own)), greedy)  # type: ignore[arg-type]


def _schema_name(schema: dict[str, Any]) -> str:
    """OpenAI wants `^[a-zA-Z0-9_-]{1,64}$`; pydantic's title is usually one already."""
    title = str(schema.get("title") or "response")
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in title)[:64]
    return name or "response"


def chat_completion(name: str, response: Any) -> Completion:
    if not getattr(response, "choices", None):
        raise ModelError(f"{name}: the server answered with no choices")
    choice = response.choices[0]
    message = choice.message
    finish_reason = choice.finish_reason or "stop"
    if message.content is None and getattr(message, "refusal", None):
        finish_reason = "refusal"
    usage = response.usage
    return Completion(
        text=message.content or "",
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        finish_reason=finish_reason,
    )
