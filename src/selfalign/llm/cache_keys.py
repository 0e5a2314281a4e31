"""The call cache's keys: a hash of everything that decides a call's answer (the model as the
cache knows it, the messages or prompt, the sampling with its seed, the schema and, where a
server has several, its structured-output mode), so a rerun replays exactly the calls it makes
again and nothing else."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .types import OPTIONAL_SAMPLING, ChatRequest, LoglikelihoodRequest, Sampling, TextRequest


def loglikelihood_key(model_name: str, request: LoglikelihoodRequest) -> str:
    """Cache key of a scoring call: model, context and continuations."""
    payload = {"model": model_name, "context": request.context, "continuations": list(request.continuations)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def call_key(model_name: str, request: ChatRequest | TextRequest | None, structured: str | None = None) -> str:
    """Cache key: model, messages (or a raw prompt), sampling (seed included), schema and, where
    a server has several, the structured-output mode. No request: the key of the model's
    remembered mode."""
    if request is None:
        payload: dict[str, Any] = {"model": model_name, "structured_mode": True}
    elif isinstance(request, TextRequest):
        payload = {"model": model_name, "prompt": request.prompt, "sampling": _sampling_key(request.sampling)}
    else:
        payload = {
            "model": model_name,
            "messages": [m.model_dump() for m in request.messages],
            "sampling": _sampling_key(request.sampling),
            "schema": request.json_schema,
        }
        if structured is not None:
            payload["structured"] = structured
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _sampling_key(sampling: Sampling) -> dict[str, Any]:
    """Sampling as it enters a cache key; optional fields left unset are left out, so the keys
    of calls that do not use them are those they had before the fields existed."""
    fields = sampling.model_dump(mode="json")
    return {k: v for k, v in fields.items() if not (k in OPTIONAL_SAMPLING and v is None)}
