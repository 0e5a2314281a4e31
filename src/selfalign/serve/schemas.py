"""The request body of `POST /v1/chat/completions`, the part of OpenAI's that selfalign serves.

Fields that do not change the answer (user, metadata, store, ...) are ignored, as
OpenAI-compatible servers do; what cannot be honoured (n > 1, tools, functions, tool_choice,
logprobs, penalties, images: UNSUPPORTED_CHAT_FIELDS) is refused with a 400 that says so, and so is
what cannot be valid: text that is not Unicode (lone surrogates), out-of-range integers, and
JSON schemas that mean nothing (see `schema_check.py`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selfalign.llm.types import Message, Sampling

from .schema_check import check_json_schema

INT64 = 2**63 - 1
#: Fields of OpenAI's chat request this server does not honour, and what to do instead.
UNSUPPORTED_CHAT_FIELDS = {
    "tools": "tools are not supported by selfalign serve",
    "tool_choice": "tools are not supported by selfalign serve",
    "parallel_tool_calls": "tools are not supported by selfalign serve",
    "functions": "functions are not supported by selfalign serve",
    "function_call": "functions are not supported by selfalign serve",
    "logprobs": "log-probabilities of chat answers are not supported; /v1/completions scores prompts",
    "top_logprobs": "log-probabilities of chat answers are not supported; /v1/completions scores prompts",
    "logit_bias": "logit_bias is not supported by selfalign serve",
    "frequency_penalty": "frequency_penalty is not supported; send 0 or leave it out",
    "presence_penalty": "presence_penalty is not supported; send 0 or leave it out",
    "audio": "audio is not supported; this server answers with text",
    "modalities": "only text answers are supported; send modalities [\"text\"] or leave it out",
    "prediction": "predicted outputs are not supported by selfalign serve",
    "web_search_options": "web search is not supported by selfalign serve",
}
_NEUTRAL: tuple[Any, ...] = (None, False, 0, [], {})  # the same as leaving the field out
_NEUTRAL_FOR = {"tool_choice": "none", "function_call": "none", "modalities": ["text"]}
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_STOPS = 16


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TextPart(_Body):
    type: Literal["text"] = Field(description="only text parts are supported")
    text: str


class ChatMessage(_Body):
    # "developer" is OpenAI's newer name for "system".
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def to_message(self) -> Message:
        if self.content is None:
            text = ""
        elif isinstance(self.content, str):
            text = self.content
        else:
            text = "".join(part.text for part in self.content)
        return Message(role="system" if self.role == "developer" else self.role, content=text)


class JsonSchemaFormat(_Body):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _meaningful(cls, schema: dict[str, Any]) -> dict[str, Any]:
        check_json_schema(schema)
        return schema


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError('response_format of type "json_schema" needs a "json_schema" object')
        return self

    def to_json_schema(self) -> dict[str, Any] | None:
        if self.type == "json_schema":
            assert self.json_schema is not None
            return self.json_schema.schema_ or {"type": "object"}
        if self.type == "json_object":
            return {"type": "object"}
        return None


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionRequest(_Body):
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)  # capped by the server, see create_app
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None, max_length=MAX_STOPS)
    seed: int | None = Field(None, ge=-INT64 - 1, le=INT64)
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        if (where := _lone_surrogate(data, "")) is not None:
            raise ValueError(
                f"{where or 'body'}: holds a lone UTF-16 surrogate (such as \\ud800), which is not text; send valid Unicode"
            )
        return data

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n not in (None, 1):
            raise ValueError("only n=1 is supported; send n requests with different seeds instead")
        return n

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        """OpenAI fields that would change the answer and that this server cannot honour are
        refused, not silently ignored (a client would trust an answer made without them)."""
        if isinstance(data, dict):
            for field, why in UNSUPPORTED_CHAT_FIELDS.items():
                value = data.get(field)
                if value not in _NEUTRAL and value != _NEUTRAL_FOR.get(field):
                    raise ValueError(f"{field}: {why}")
        return data

    def to_messages(self) -> tuple[Message, ...]:
        return tuple(m.to_message() for m in self.messages)

    def to_sampling(self, default: Sampling, max_tokens_limit: int | None = None) -> Sampling:
        """The request's settings over the server's defaults (fields the client left out);
        max_tokens capped at `max_tokens_limit`."""
        given: dict[str, Any] = {}
        if self.temperature is not None:
            given["temperature"] = self.temperature
        if self.top_p is not None:
            given["top_p"] = self.top_p
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            given["max_tokens"] = max_tokens
        if max_tokens_limit is not None:
            given["max_tokens"] = min(given.get("max_tokens", default.max_tokens), max_tokens_limit)
        if self.stop is not None:
            given["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if self.seed is not None:
            given["seed"] = self.seed
        return Sampling.model_validate({**default.model_dump(), **given})

    def to_json_schema(self) -> dict[str, Any] | None:
        return self.response_format.to_json_schema() if self.response_format else None


def _lone_surrogate(value: Any, where: str) -> str | None:
    """The path of the first string (value or key) that holds a lone surrogate, or None. A walk
    with a stack of its own: no nesting depth a client sends can exhaust Python's recursion."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return path
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                child = f"{path}.{_printable(key)}" if path else _printable(key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    return child
                children.append((item, child))
            stack.extend(reversed(children))  # the first child is looked at first
        elif isinstance(node, list):
            stack.extend(reversed([(item, f"{path}.{i}") for i, item in enumerate(node)]))
    return None


def _printable(key: Any) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


#: Most top log-probabilities a /v1/completions request may ask per position (vLLM's limit).
MAX_TOP_LOGPROBS = 20
#: Most prompts in one /v1/completions request.
MAX_PROMPTS = 1024
#: Most prompts x top log-probabilities per position in one request: what an answer holds per
#: prompt token (1,024 prompts with logprobs 2, or 102 with 20).
MAX_PROMPT_LOGPROBS = 2048
#: Most log-probabilities one answer holds: prompt tokens x (1 + logprobs), all prompts together
#: (a token is at least one byte of text, so a text prompt counts its UTF-8 bytes). About 250 MB
#: of results at most, whatever the batch: 2 MB of text with logprobs 0, 95 KB with 20.
MAX_LOGPROB_ENTRIES = 2_000_000


class CompletionRequest(_Body):
    """`POST /v1/completions` as selfalign serves it: prompt scoring. Each prompt (text, or token
    ids) is scored with `echo` and `logprobs`, and `max_tokens` 1 adds the greedy next token:
    what lm-evaluation-harness's `local-completions` model and `openai:` scorers send. Longer
    generation belongs to /v1/chat/completions."""

    model: str = ""
    prompt: Any = Field(description="text, texts, token ids, or lists of token ids")
    max_tokens: int = Field(1, ge=0, description="0: score the prompt only; 1: and its greedy next token")
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int | None = Field(None, ge=-INT64 - 1, le=INT64)
    n: int | None = None
    best_of: int | None = None
    stream: bool = False
    suffix: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        if (where := _lone_surrogate(data, "")) is not None:
            raise ValueError(f"{where or 'body'}: holds a lone UTF-16 surrogate (such as \\ud800), which is not text; send valid Unicode")
        return data

    @field_validator("prompt")
    @classmethod
    def _prompt_shape(cls, prompt: Any) -> Any:
        def ids(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)

        if isinstance(prompt, str) or ids(prompt):
            return prompt
        if isinstance(prompt, list) and (all(isinstance(p, str) for p in prompt) or all(ids(p) for p in prompt)):
            return prompt
        raise ValueError("must be a string, a list of strings, a list of token ids, or a list of such lists")

    @model_validator(mode="after")
    def _servable(self) -> "CompletionRequest":
        if self.max_tokens > 1:
            raise ValueError(
                "max_tokens: /v1/completions here scores prompts: max_tokens 0, or 1 for the greedy next token; "
                "generate text with /v1/chat/completions"
            )
        if self.n not in (None, 1) or self.best_of not in (None, 1):
            raise ValueError("only n=1 and best_of=1 are supported")
        if self.stream:
            raise ValueError("stream is not supported by /v1/completions here; send stream=false")
        if self.suffix:
            raise ValueError("suffix is not supported")
        if self.max_tokens == 1 and self.temperature:
            raise ValueError("max_tokens 1 gives the greedy next token only; send temperature 0")
        if not self.prompts():
            raise ValueError("prompt: give at least one prompt")
        if len(self.prompts()) > MAX_PROMPTS:
            raise ValueError(f"prompt: at most {MAX_PROMPTS} prompts per request")
        if len(self.prompts()) * max(1, self.top_k() or 0) > MAX_PROMPT_LOGPROBS:
            raise ValueError(
                f"prompt: {len(self.prompts())} prompts x logprobs {self.top_k()} is over this server's bound of "
                f"{MAX_PROMPT_LOGPROBS} per request; send fewer prompts per request or ask fewer logprobs"
            )
        tokens = sum(len(p.encode("utf-8")) if isinstance(p, str) else len(p) for p in self.prompts())
        if tokens * (1 + (self.top_k() or 0)) > MAX_LOGPROB_ENTRIES:
            raise ValueError(
                f"prompt: up to {tokens:,} tokens x (1 + logprobs {self.top_k() or 0}) is over this server's bound of "
                f"{MAX_LOGPROB_ENTRIES:,} log-probabilities per request; send shorter or fewer prompts, or ask fewer logprobs"
            )
        if any(isinstance(p, list) and not p for p in self.prompts()) or any(p == "" for p in self.prompts()):
            raise ValueError("prompt: an empty prompt has nothing to score")
        return self

    def prompts(self) -> list[str | list[int]]:
        """The batch: a text or a token-id list is one prompt; a list of them is many."""
        p = self.prompt
        if isinstance(p, str) or (p and all(isinstance(t, int) for t in p)):
            return [p]  # type: ignore[list-item]
        return list(p)  # type: ignore[arg-type]

    def top_k(self) -> int | None:
        """How many top log-probabilities per position; None: no logprobs in the answer."""
        if self.logprobs is None and self.top_logprobs is None:
            return None
        return max(self.logprobs or 0, self.top_logprobs or 0)
