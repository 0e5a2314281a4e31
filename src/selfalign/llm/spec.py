"""Model spec strings -> providers. Each provider module is imported only when asked for."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from selfalign.errors import UserError

from .model import CallCache, Model, RetryPolicy
from .provider import Provider
from .types import Sampling

if TYPE_CHECKING:
    from .ray_pool import RayOptions

log = logging.getLogger(__name__)

SPEC_HELP = (
    "a model spec is one of: hf:ID_OR_PATH, openai:MODEL@BASE_URL[?structured=MODE] (or openai:MODEL "
    "with OPENAI_BASE_URL / OPENAI_API_KEY set), vllm:ID_OR_PATH, scripted:FILE"
)
#: Options an openai: spec may carry after `?`.
OPENAI_SPEC_OPTIONS = ("structured",)


#: The kinds whose engine runs in Ray actors under `--ray` (scripted: stands in for one in tests
#: and benchmarks); an openai: server already runs elsewhere, so its calls stay in the driver.
RAY_KINDS = ("hf", "vllm", "scripted")


def load_provider(spec: str, *, ray: RayOptions | None = None, **options: Any) -> Provider:
    """The provider `spec` names; with `ray` (and an engine's spec), a pool of Ray actors that
    each hold one (llm.ray_pool)."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise UserError(f"bad model spec {spec!r}: {SPEC_HELP}")
    if ray is not None and kind in RAY_KINDS:
        from .ray_pool import RayPool

        return RayPool(spec, ray, options)
    if kind == "hf":
        from .hf import HFProvider

        return HFProvider(target, **options)
    if kind == "openai":
        from .openai_compat import OpenAIProvider

        if ray is not None:
            log.warning("%s: the server already runs apart from this process; --ray leaves its calls here", spec)

        target, _, query = target.partition("?")
        model, _, base_url = target.partition("@")
        return OpenAIProvider(model, base_url=base_url or None, **_spec_options(spec, query), **options)
    if kind == "vllm":
        from .vllm import VLLMProvider

        return VLLMProvider(target, **options)
    if kind == "scripted":
        from .scripted import ScriptedProvider

        return ScriptedProvider.from_file(target)
    raise UserError(f"unknown model kind {kind!r} in {spec!r}: {SPEC_HELP}")


def _spec_options(spec: str, query: str) -> dict[str, str]:
    """`structured=json_object` -> {"structured": "json_object"}; unknown names are refused."""
    from urllib.parse import parse_qsl

    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPENAI_SPEC_OPTIONS))
    if unknown:
        raise UserError(f"bad model spec {spec!r}: unknown option {unknown[0]!r}; an openai: spec takes ?structured=MODE")
    return options


def load_model(
    spec: str,
    *,
    cache: CallCache | None = None,
    max_concurrency: int = 64,
    retry: RetryPolicy | None = None,
    sampling: Sampling | None = None,
    ray: RayOptions | None = None,
    **provider_options: Any,
) -> Model:
    """Build the shared wrapper around the provider that `spec` names; with `ray`, the provider
    runs in a pool of Ray actors (llm.ray_pool) and the wrapper stays here."""
    return Model(
        load_provider(spec, ray=ray, **provider_options),
        max_concurrency=max_concurrency,
        retry=retry,
        cache=cache,
        sampling=sampling,
    )
