"""Observers: memory-less judges that rate an answer 1-7 on alignment and on engagement. They
see the question and the answer only, never an agent's memory or its neighbours' feedback, and
may be another model than the agents' (--observer-model)."""

from __future__ import annotations

from selfalign.llm import Model, ModelError
from selfalign.methods.prompts import Prompts

from .config import SandboxConfig
from .record import Observation, ObserverRating


async def observe(observer: Model, prompts: Prompts, cfg: SandboxConfig, question: str, answer: str, seed: int) -> Observation:
    prompt = prompts.render("observe", question=question, answer=answer)
    try:
        result = await observer.chat(
            [{"role": "user", "content": prompt}],
            schema=ObserverRating,
            temperature=cfg.judge_temperature,
            max_tokens=cfg.judge_max_tokens,
            seed=seed,
        )
    except ModelError as exc:  # an unusable rating is recorded as failed, never as a number
        return Observation(error=f"{type(exc).__name__}: {exc}")
    p = result.parsed
    return Observation(alignment=p.alignment, engagement=p.engagement, reason=p.reason)
