"""Structured output in text: the instruction that asks a model for JSON under a schema (where
the provider cannot constrain its decoding), and the reading of the JSON it writes."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import BaseModel

from .types import Message


@functools.cache
def json_schema_of(schema: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON schema, built once per model class: building it costs more than
    the rest of a call. Shared: never modify the dict returned."""
    return schema.model_json_schema()


def schema_instruction(json_schema: dict[str, Any]) -> str:
    """What a prompt that wants JSON says at its end (also in exported training conversations)."""
    return (
        "\n\nReply with a single JSON object and nothing else. It must validate against this JSON schema:\n"
        + json.dumps(json_schema)
    )


@functools.cache
def schema_instruction_of(schema: type[BaseModel]) -> str:
    """`schema_instruction` for a pydantic model, written once per model class."""
    return schema_instruction(json_schema_of(schema))


def with_instruction(msgs: tuple[Message, ...], instruction: str) -> tuple[Message, ...]:
    last = msgs[-1]
    return msgs[:-1] + (Message(role=last.role, content=last.content + instruction),)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_LENIENT_JSON = json.JSONDecoder(strict=False)  # made once: json.loads(strict=False) makes one per call


def read_json(text: str) -> Any:
    """A model's JSON, read leniently where that is safe: surrounding whitespace, a code fence
    (models without constrained decoding often add one) and raw control characters inside
    strings (constrained decoders in some servers let tabs and newlines through). The caller
    then validates it strictly against the schema. Raises ValueError for anything else."""
    match = _FENCE.match(text)
    body = match.group(1) if match else text.strip()
    try:
        return _LENIENT_JSON.decode(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}") from exc
