"""Model spec strings -> a provider in this process. Each provider module is imported only when
asked for. (`spec.py` adds the Ray pool on top; a Ray actor opens its engine here.)"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from selfalign.errors import UserError

from .provider import Provider

log = logging.getLogger(__name__)

SPEC_HELP = (
    "a model spec is one of: hf:ID_OR_PATH, openai:MODEL@BASE_URL[?structured=MODE] (or openai:MODEL "
    "with OPENAI_BASE_URL / OPENAI_API_KEY set), vllm:ID_OR_PATH, llamacpp:FILE.gguf, scripted:FILE"
)
#: Options an openai: spec may carry after `?`.
OPENAI_SPEC_OPTIONS = ("structured",)


def split_spec(spec: str) -> tuple[str, str]:
    """`hf:/models/x` -> ("hf", "/models/x"); a spec without both parts is refused."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise UserError(f"bad model spec {spec!r}: {SPEC_HELP}")
    return kind, target


def open_provider(spec: str, **options: Any) -> Provider:
    """The provider `spec` names, running in this process."""
    kind, target = split_spec(spec)
    if kind == "hf":
        from .hf import HFProvider

        return HFProvider(target, **options)
    if kind == "openai":
        from .openai_compat import OpenAIProvider

        target, _, query = target.partition("?")
        model, _, base_url = target.partition("@")
        return OpenAIProvider(model, base_url=base_url or None, **_spec_options(spec, query), **options)
    if kind == "vllm":
        from .vllm import VLLMProvider

        return VLLMProvider(target, **options)
    if kind == "llamacpp":
        from .llamacpp import LlamaCppProvider

        return LlamaCppProvider(target, **options)
    if kind == "scripted":
        from .scripted import ScriptedProvider

        return ScriptedProvider.from_file(target)
    raise UserError(f"unknown model kind {kind!r} in {spec!r}: {SPEC_HELP}")


def _spec_options(spec: str, query: str) -> dict[str, str]:
    """`structured=json_object` -> {"structured": "json_object"}; unknown names are refused."""
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPENAI_SPEC_OPTIONS))
    if unknown:
        raise UserError(f"bad model spec {spec!r}: unknown option {unknown[0]!r}; an openai: spec takes ?structured=MODE")
    return options
