"""The request body of `POST /v1/chat/completions`, the part of OpenAI's that selfalign serves.

Unknown fields (user, logprobs, metadata, ...) are ignored, as OpenAI-compatible servers do;
what cannot be honoured (n > 1, tools, images) is refused with a 400 that says so.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selfalign.llm.types import Message, Sampling


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
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None

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

    def to_sampling(self, default: Sampling) -> Sampling:
        """The request's settings over the server's defaults (fields the client left out)."""
        given: dict[str, Any] = {}
        if self.temperature is not None:
            given["temperature"] = self.temperature
        if self.top_p is not None:
            given["top_p"] = self.top_p
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            given["max_tokens"] = max_tokens
        if self.stop is not None:
            given["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if self.seed is not None:
            given["seed"] = self.seed
        return Sampling.model_validate({**default.model_dump(), **given})

    def to_json_schema(self) -> dict[str, Any] | None:
        return self.response_format.to_json_schema() if self.response_format else None
