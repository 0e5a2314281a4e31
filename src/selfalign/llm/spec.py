"""Model spec strings -> providers. Each provider module is imported only when asked for."""

from __future__ import annotations

from typing import Any

from selfalign.errors import UserError

from .model import CallCache, Model, RetryPolicy
from .provider import Provider
from .types import Sampling

SPEC_HELP = (
    "a model spec is one of: hf:ID_OR_PATH, openai:MODEL@BASE_URL (or openai:MODEL with "
    "OPENAI_BASE_URL / OPENAI_API_KEY set), vllm:ID_OR_PATH, scripted:FILE"
)


def load_provider(spec: str, **options: Any) -> Provider:
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise UserError(f"bad model spec {spec!r}: {SPEC_HELP}")
    if kind == "hf":
        from .hf import HFProvider

        return HFProvider(target, **options)
    if kind == "openai":
        from .openai_compat import OpenAIProvider

        model, _, base_url = target.partition("@")
        return OpenAIProvider(model, base_url=base_url or None, **options)
    if kind == "vllm":
        from .vllm import VLLMProvider

        return VLLMProvider(target, **options)
    if kind == "scripted":
        from .scripted import ScriptedProvider

        return ScriptedProvider.from_file(target)
    raise UserError(f"unknown model kind {kind!r} in {spec!r}: {SPEC_HELP}")


def load_model(
    spec: str,
    *,
    cache: CallCache | None = None,
    max_concurrency: int = 64,
    retry: RetryPolicy | None = None,
    sampling: Sampling | None = None,
    **provider_options: Any,
) -> Model:
    """Build the shared wrapper around the provider that `spec` names."""
    return Model(
        load_provider(spec, **provider_options),
        max_concurrency=max_concurrency,
        retry=retry,
        cache=cache,
        sampling=sampling,
    )
