"""Observers: memory-less judges that rate an answer 1-7 on alignment and, in a separate call,
on engagement, so that one score does not colour the other. They see the question and the
answer only, never an agent's memory or its neighbours' feedback, and may be another model
than the agents' (--observer-model)."""

from __future__ import annotations

import asyncio

from selfalign.llm import Model, ModelError
from selfalign.methods.prompts import Prompts

from .config import SandboxConfig
from .record import Observation, Rating


async def observe(observer: Model, prompts: Prompts, cfg: SandboxConfig, question: str, answer: str, seed: int) -> Observation:
    alignment, engagement = await asyncio.gather(
        rate(observer, prompts.render("observe_alignment", question=question, answer=answer), cfg, seed),
        rate(observer, prompts.render("observe_engagement", question=question, answer=answer), cfg, seed + 1),
    )
    errors = [r for r in (alignment, engagement) if isinstance(r, str)]
    return Observation(
        alignment=None if isinstance(alignment, str) else alignment.rating,
        reason=None if isinstance(alignment, str) else alignment.reason,
        engagement=None if isinstance(engagement, str) else engagement.rating,
        engagement_reason=None if isinstance(engagement, str) else engagement.reason,
        error="; ".join(errors) or None,
    )


async def rate(model: Model, prompt: str, cfg: SandboxConfig, seed: int) -> Rating | str:
    """A validated 1-7 rating, or the error that made it unusable (never a made-up number)."""
    try:
        result = await model.chat(
            [{"role": "user", "content": prompt}],
            schema=Rating,
            temperature=cfg.judge_temperature,
            max_tokens=cfg.judge_max_tokens,
            seed=seed,
        )
    except ModelError as exc:
        return f"{type(exc).__name__}: {exc}"
    return result.parsed
