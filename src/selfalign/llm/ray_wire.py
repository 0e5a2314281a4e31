"""What crosses between the `--ray` driver and its actors: a batch of calls one way, a part of
answers the other, each as one `bytes` of plain values.

Handed objects, Ray pickles them with cloudpickle, whose hook runs in Python for every object: a
chat request (pydantic messages and sampling) cost the driver about 10 us that way, as much as
the rest of the pool's work for the call. Its plain fields through the standard pickle cost under
1 us, and Ray passes the bytes on without looking inside. Both ends are selfalign's own processes
in one Ray cluster, which already exchange pickles; nothing from outside is read here.
"""

from __future__ import annotations

import pickle
from typing import Any

from .types import ChatRequest, Message, Sampling, TextRequest

#: (call id, engine method, request)
Call = tuple[int, str, Any]
#: (call id, True, answer) or (call id, False, the engine's exception)
Outcome = tuple[int, bool, Any]


def pack_calls(calls: list[Call]) -> bytes:
    return pickle.dumps([(call_id, method, _plain(request)) for call_id, method, request in calls], protocol=5)


def unpack_calls(data: bytes) -> list[Call]:
    return [(call_id, method, _request(plain)) for call_id, method, plain in pickle.loads(data)]


def pack_outcomes(part: list[Outcome]) -> bytes:
    """Answers are dataclasses of plain values and exceptions that `portable` let through."""
    return pickle.dumps(part, protocol=5)


def unpack_outcomes(data: bytes) -> list[Outcome]:
    return pickle.loads(data)


def portable(exc: Exception) -> Exception:
    """`exc` if it crosses to the driver intact, else a RuntimeError with its words."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=5))
        return exc
    except Exception:  # noqa: BLE001 (an exception whose class cannot be rebuilt from its arguments)
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _plain(request: Any) -> Any:
    if isinstance(request, ChatRequest):
        messages = tuple((m.role, m.content) for m in request.messages)
        return ("chat", messages, request.sampling.__dict__, request.json_schema)
    if isinstance(request, TextRequest):
        return ("text", request.prompt, request.sampling.__dict__)
    return ("as is", request)  # a LoglikelihoodRequest: a dataclass of strings


def _request(plain: tuple[Any, ...]) -> Any:
    """The request `_plain` took apart, rebuilt without validating again: the driver's model
    wrapper validated it, and a check per field would cost the actor more than the pickle saves."""
    kind = plain[0]
    if kind == "chat":
        _, messages, sampling, schema = plain
        rebuilt = tuple(Message.model_construct(role=role, content=content) for role, content in messages)
        return ChatRequest(rebuilt, Sampling.model_construct(**sampling), schema)
    if kind == "text":
        return TextRequest(plain[1], Sampling.model_construct(**plain[2]))
    return plain[1]
