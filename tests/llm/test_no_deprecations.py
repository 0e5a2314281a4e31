"""Loading, decoding (our loop and the generate fallback), constrained decoding and scoring on the
tiny model say nothing about deprecations: the engine speaks the installed transformers' cache
API, since what is deprecated in one release is gone in a later one that pyproject.toml allows."""

from __future__ import annotations

import asyncio
import logging
import warnings

from selfalign.llm.hf import HFProvider
from selfalign.llm.types import ChatRequest, LoglikelihoodRequest, Message, Sampling

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def ask(text: str, schema: dict | None = None, **sampling) -> ChatRequest:
    return ChatRequest((Message(role="user", content=text),), Sampling(max_tokens=6, **sampling), schema)


async def use(provider: HFProvider) -> None:
    await asyncio.gather(provider.complete(ask("hi", temperature=0)), provider.complete(ask("yo", temperature=0.8, seed=1)))
    await provider.complete(ask("json", SCHEMA, temperature=0))
    await provider.loglikelihood(LoglikelihoodRequest("The sky is", (" blue", " green")))
    provider.engine.continuous = False  # the fallback: one model.generate per batch
    await provider.complete(ask("again", temperature=0.8, seed=2))


def test_loading_and_decoding_warn_of_no_deprecation(tiny_model_dir):
    logged = Collect()
    transformers_log = logging.getLogger("transformers")
    transformers_log.addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            provider = HFProvider(str(tiny_model_dir), device="cpu")
            try:
                asyncio.run(use(provider))
            finally:
                asyncio.run(provider.close())
    finally:
        transformers_log.removeHandler(logged)
    deprecations = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert deprecations == []
    assert [m for m in logged.messages if "deprecat" in m.lower()] == []
