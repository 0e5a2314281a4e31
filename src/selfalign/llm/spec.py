"""Model spec strings -> providers and the Model wrapper around them, in this process
(providers.py) or, with `ray`, in a pool of Ray actors (ray_pool.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .model import CallCache, Model, RetryPolicy
from .provider import Provider
from .providers import open_provider, split_spec
from .types import Sampling

if TYPE_CHECKING:
    from .ray_pool import RayOptions

log = logging.getLogger(__name__)

#: The kinds whose engine runs in Ray actors under `--ray` (scripted: stands in for one in tests
#: and benchmarks); an openai: server already runs elsewhere, so its calls stay in the driver.
RAY_KINDS = ("hf", "vllm", "llamacpp", "scripted")


def load_provider(spec: str, *, ray: RayOptions | None = None, **options: Any) -> Provider:
    """The provider `spec` names; with `ray` (and an engine's spec), a pool of Ray actors that
    each hold one (llm.ray_pool)."""
    kind, _ = split_spec(spec)
    if ray is not None and kind in RAY_KINDS:
        from .ray_pool import RayPool

        return RayPool(spec, ray, options)
    if ray is not None and kind == "openai":
        log.warning("%s: the server already runs apart from this process; --ray leaves its calls here", spec)
    return open_provider(spec, **options)


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
