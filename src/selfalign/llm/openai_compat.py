"""`openai:MODEL@BASE_URL`: any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp,
TGI, OpenAI itself, or `selfalign serve`), through the official `openai` client.

    model = load_model("openai:llama3@http://localhost:8000/v1")
    model = load_model("openai:gpt-4o-mini")    # OPENAI_API_KEY, OPENAI_BASE_URL from the environment

    model = load_model("openai:m@http://localhost:8080/v1?structured=json_object")  # force a mode

Structured output: servers differ in how they take a JSON schema, so the first call with a
schema finds out, once, which of these the server accepts (the Model wrapper keeps the answer
in the run, so a resumed run sends the same prompts):
- `structured_outputs`: vLLM's own request field, with unbounded whitespace turned off (asked
  first of a server whose /v1/models says it is vLLM);
- `json_schema`: `response_format={"type": "json_schema", ...}` (OpenAI, SGLang, Ollama,
  llama.cpp's C++ server, `selfalign serve`);
- `json_object`: `response_format={"type": "json_object", "schema": ...}` (llama-cpp-python);
- `none`: nothing is sent; the Model wrapper puts the schema into the prompt and validates.
`?structured=MODE` on the spec skips the probe.

Raw text prompts (`Model.text`, for base models) go to the server's /v1/completions.

Log-likelihoods (`loglikelihood`) come from `/v1/completions` with `echo` and `logprobs`, as
lm-evaluation-harness's `local-completions` model asks for them: one request holds the
context alone and the context followed by each continuation (trailing whitespace of the context
moved to the continuations), and a continuation's tokens are those after the context's own.
A server without prompt log-probabilities there (OpenAI's chat models, Ollama) is a ModelError
that says so.

This provider sends one request per call and reports failures: 429, timeouts, lost connections
and 5xx as TransientError (the Model wrapper retries those with backoff); a refusal (400, 422,
or a 500 whose body says the request is invalid) as ModelError naming what the server does not
take and what to do; any other 4xx as ModelError with the server's message. The client's own
retries are off: retrying lives once, in `selfalign.llm.model.Model`. The API key is never
logged and never part of a name, repr or error.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import openai

from selfalign.errors import UserError
from selfalign.redact import add_secret

from .errors import ModelError, TransientError
from .openai_wire import (
    SCORING_SERVERS,
    STRUCTURED_MODES,
    chat_completion,
    connection_limits,
    continuation_loglikelihood,
    prompt_logprobs,
    sampling_params,
    schema_params,
    server_message,
    status_error,
)
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, Message, Sampling, TextRequest

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The key sent to servers that do not check keys (vLLM, Ollama, llama.cpp, `selfalign serve`).
PLACEHOLDER_KEY = "EMPTY"
# The probe's schema: an enum value no model writes unless its decoding is constrained.
_PROBE_SCHEMA = {
    "title": "Probe",
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes"]}},
    "required": ["answer"],
}
_PROBE_REQUEST = ChatRequest(
    (Message(role="user", content="Answer with a JSON object."),), Sampling(temperature=0.0, max_tokens=32), _PROBE_SCHEMA
)


class OpenAIProvider:
    """One model on one OpenAI-compatible server.

    `structured` is how requests carry a JSON schema (one of STRUCTURED_MODES); None finds out
    on the first structured call (`find_structured_mode`).
    """

    #: The API's `logit_bias` (token ids of the server's tokenizer); no n-gram penalties.
    sampling_fields = frozenset({"logit_bias"})

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_connections: int = 64,
        structured: str | None = None,
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
        add_secret(key)  # an error that quotes it is redacted before it is stored or shown
        self.timeout = timeout
        self.max_connections = max_connections
        if structured is not None and structured not in STRUCTURED_MODES:
            raise UserError(
                f"openai:{model}: unknown structured={structured!r}; use one of {', '.join(STRUCTURED_MODES)}, "
                "e.g. openai:NAME@URL?structured=json_object"
            )
        self.structured = structured
        self._probe_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.name = f"openai:{model}@{self.base_url}"
        # One client per event loop: an httpx connection pool cannot outlive the loop it was
        # opened on, and callers may run several `asyncio.run`s with the same provider.
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.name!r})"

    @property
    def constrained(self) -> bool:
        """True unless the schema must go into the prompt (known after `find_structured_mode`)."""
        return self.structured != "none"

    async def find_structured_mode(self, remembered: str | None = None) -> str:
        """The mode requests with a schema use: the forced one, the one this run `remembered`,
        or the first the server accepts, probed once however many calls wait for it."""
        if self.structured is None and remembered in STRUCTURED_MODES:
            self.structured = remembered
        if self.structured is None:
            async with self._lock():
                if self.structured is None:
                    self.structured = await self._probe()
                    log.info("%s: structured output as %s", self.name, self.structured)
        return self.structured

    async def _probe(self) -> str:
        candidates = list(STRUCTURED_MODES[1:-1])
        if await self._is_vllm():
            candidates.insert(0, "structured_outputs")
        for mode in candidates:
            try:
                await self._send(_PROBE_REQUEST, mode)
                return mode
            except TransientError:
                raise
            except ModelError as exc:
                log.debug("%s: structured output as %s refused: %s", self.name, mode, exc)
        return "none"

    async def _is_vllm(self) -> bool:
        """vLLM's /v1/models names itself the owner of its models."""
        try:
            page = await self._get_client().models.list()
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise TransientError(f"{self.name}: cannot connect: {exc}") from exc
        except openai.APIError:
            return False
        return any(getattr(m, "owned_by", None) == "vllm" for m in page.data)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._probe_lock is None or self._probe_lock[0] is not loop:
            self._probe_lock = (loop, asyncio.Lock())
        return self._probe_lock[1]

    async def complete(self, request: ChatRequest) -> Completion:
        mode = "none"
        if request.json_schema is not None:
            mode = await self.find_structured_mode()
        return await self._send(request, mode)

    async def complete_text(self, request: TextRequest) -> Completion:
        """A raw prompt through the server's /v1/completions (no chat template)."""
        params = {"model": self.model, "prompt": request.prompt, **sampling_params(request.sampling)}
        response = await self._call(self._get_client().completions.create, params, "none")
        if not getattr(response, "choices", None):
            raise ModelError(f"{self.name}: the server answered with no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].text or "",
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
            finish_reason=response.choices[0].finish_reason or "stop",
        )

    async def _send(self, request: ChatRequest, mode: str) -> Completion:
        create = self._get_client().chat.completions.create
        response = await self._call(create, self._params(request, mode), mode if request.json_schema is not None else "none")
        return chat_completion(self.name, response)

    async def _call(self, create: Any, params: dict[str, Any], mode: str) -> Any:
        """One request; the server's failures as TransientError (worth a retry) or ModelError."""
        try:
            return await create(**params)
        except openai.APIStatusError as exc:
            raise status_error(self.name, exc, mode) from exc
        except openai.APITimeoutError as exc:
            raise TransientError(f"{self.name}: no answer within {self.timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            detail = f": {type(cause).__name__}: {cause}" if cause else ""
            raise TransientError(f"{self.name}: cannot connect{detail}") from exc
        except openai.APIError as exc:  # e.g. a response that is not a completion
            raise ModelError(f"{self.name}: {exc.message}") from exc

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        """Each continuation's summed log-probability after the context, and whether every one of
        its tokens is the most likely there, from the server's prompt log-probabilities."""
        context = request.context.rstrip()
        spaces = request.context[len(context) :]
        if not context:
            raise UserError(f"{self.name}: an empty context cannot be scored through /v1/completions")
        prompts = [context] + [context + spaces + c for c in request.continuations]
        try:
            response = await self._get_client().completions.create(
                model=self.model, prompt=prompts, max_tokens=1, echo=True, logprobs=1, temperature=0
            )
        except openai.NotFoundError as exc:
            raise ModelError(
                f"{self.name}: the server has no /v1/completions for this model (HTTP 404: {server_message(exc)}), so it "
                f"cannot score continuations; {SCORING_SERVERS}"
            ) from exc
        except openai.APIStatusError as exc:
            error = status_error(self.name, exc)
            if isinstance(error, TransientError):
                raise error from exc
            raise ModelError(
                f"{self.name}: the server refused /v1/completions with echo and logprobs (HTTP {exc.status_code}: "
                f"{server_message(exc)}); {SCORING_SERVERS}"
            ) from exc
        except openai.APITimeoutError as exc:
            raise TransientError(f"{self.name}: no answer within {self.timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            raise TransientError(f"{self.name}: cannot connect: {exc}") from exc
        choices = sorted(response.choices or [], key=lambda c: c.index)
        logprobs = [prompt_logprobs(self.name, c) for c in choices]
        if len(logprobs) != len(prompts):
            raise ModelError(f"{self.name}: /v1/completions answered {len(logprobs)} choices for {len(prompts)} prompts")
        context_tokens = len(logprobs[0][0]) - 1  # the last is the one generated token
        return [continuation_loglikelihood(tokens, tops, context_tokens) for tokens, tops in logprobs[1:]]

    def _params(self, request: ChatRequest, mode: str = "none") -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            **sampling_params(request.sampling),
        }
        if request.json_schema is not None:
            params.update(schema_params(request.json_schema, mode))
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
                    limits=connection_limits(self.max_connections), timeout=self.timeout
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
