"""The request body of `POST /v1/chat/completions`, the part of OpenAI's that selfalign serves.

Unknown fields (user, logprobs, metadata, ...) are ignored, as OpenAI-compatible servers do;
what cannot be honoured (n > 1, tools, images) is refused with a 400 that says so, and so is
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

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, tools: list[Any] | None) -> list[Any] | None:
        if tools:
            raise ValueError("tools are not supported by selfalign serve")
        return tools

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
    """The path of the first string (value or key) that holds a lone surrogate, or None."""
    if isinstance(value, str):
        return where if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{_printable(key)}" if where else _printable(key)
            if isinstance(key, str) and _lone_surrogate(key, path) is not None:
                return path
            if (found := _lone_surrogate(item, path)) is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _lone_surrogate(item, f"{where}.{i}")) is not None:
                return found
    return None


def _printable(key: Any) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")
