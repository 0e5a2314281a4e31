"""`openai:MODEL@BASE_URL`: any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp,
TGI, OpenAI itself, or `selfalign serve`), through the official `openai` client.

    model = load_model("openai:llama3@http://localhost:8000/v1")
    model = load_model("openai:gpt-4o-mini")    # OPENAI_API_KEY, OPENAI_BASE_URL from the environment

This provider sends one request per call and reports failures: 429, 5xx, timeouts and lost
connections as TransientError (the Model wrapper retries those with backoff), any other 4xx as
ModelError with the server's message. The client's own retries are off: retrying lives once, in
`selfalign.llm.model.Model`. The API key is never logged and never part of a name, repr or error.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import openai

from selfalign.errors import UserError

from .errors import ModelError, TransientError
from .types import ChatRequest, Completion

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The key sent to servers that do not check keys (vLLM, Ollama, llama.cpp, `selfalign serve`).
PLACEHOLDER_KEY = "EMPTY"


class OpenAIProvider:
    """One model on one OpenAI-compatible server.

    `constrained=True` sends `response_format={"type": "json_schema", ...}` when a request has a
    JSON schema (vLLM, SGLang, OpenAI and `selfalign serve` enforce it); pass
    `constrained=False` for a server that rejects `response_format`, and the Model wrapper will
    put the schema into the prompt instead.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_connections: int = 64,
        constrained: bool = True,
    ) -> None:
        if not model:
            raise UserError("openai: needs a model name, e.g. openai:llama3@http://localhost:8000/v1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url == OPENAI_DEFAULT_BASE_URL:
                raise UserError(
                    f"openai:{model} talks to {OPENAI_DEFAULT_BASE_URL} and needs an API key: set "
                    "OPENAI_API_KEY, or name your own server with openai:MODEL@BASE_URL"
                )
            key = PLACEHOLDER_KEY
        self._api_key = key
        self.timeout = timeout
        self.max_connections = max_connections
        self.constrained = constrained
        self.name = f"openai:{model}@{self.base_url}"
        # One client per event loop: an httpx connection pool cannot outlive the loop it was
        # opened on, and callers may run several `asyncio.run`s with the same provider.
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.name!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        client = self._get_client()
        try:
            response = await client.chat.completions.create(**self._params(request))
        except openai.APIStatusError as exc:
            raise _status_error(self.name, exc) from exc
        except openai.APITimeoutError as exc:
            raise TransientError(f"{self.name}: no answer within {self.timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            detail = f": {type(cause).__name__}: {cause}" if cause else ""
            raise TransientError(f"{self.name}: cannot connect{detail}") from exc
        except openai.APIError as exc:  # e.g. a response that is not a chat completion
            raise ModelError(f"{self.name}: {exc.message}") from exc
        return _completion(self.name, response)

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            params["stop"] = list(s.stop)
        if s.seed is not None:
            params["seed"] = s.seed
        if request.json_schema is not None and self.constrained:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(request.json_schema),
                    "schema": request.json_schema,
                    "strict": False,
                },
            }
        return params

    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,  # the Model wrapper retries
                http_client=openai.DefaultAsyncHttpxClient(
                    limits=_limits(self.max_connections), timeout=self.timeout
                ),
            )
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            try:
                await client.close()
            except RuntimeError:  # its loop is gone; nothing left to release
                pass


def _limits(max_connections: int) -> Any:
    """Connection limits for the client's HTTP library (httpx2 in openai>=3, httpx before)."""
    try:
        import httpx2 as httpx_module
    except ImportError:
        import httpx as httpx_module
    return httpx_module.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def _status_error(name: str, exc: Any) -> ModelError:
    status = exc.status_code
    message = _server_message(exc)
    if status == 429 or status == 408 or status >= 500:
        return TransientError(f"{name}: HTTP {status}: {message}")
    return ModelError(f"{name}: HTTP {status}: {message}")


def _server_message(exc: Any) -> str:
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


def _schema_name(schema: dict[str, Any]) -> str:
    """OpenAI wants `^[a-zA-Z0-9_-]{1,64}$`; pydantic's title is usually one already."""
    title = str(schema.get("title") or "response")
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in title)[:64]
    return name or "response"


def _completion(name: str, response: Any) -> Completion:
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
