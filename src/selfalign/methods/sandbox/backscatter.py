"""One back-scatter turn: a central agent drafts an answer with its memory, k neighbours within
the social radius rate it 1-7 with a reason, the agent revises seeing the mean rating and all
the feedback; memory-less observers rate draft and revision. The revision reaches the agent's
memory at the end of the round (simulate.py), not here.

    draft ──► k neighbour ratings (concurrent) ─┐
          └─► observer on the draft ────────────┼─► revision ──► observer on the revision
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfalign.errors import ItemFailed
from selfalign.llm import Model
from selfalign.methods.answers import whole_answer
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .config import SandboxConfig
from .grid import agent_id, choose_raters, round_id
from .memory import MemoryBank
from .observers import observe, rate
from .record import RECORD_FORMAT, Feedback, Memory, SandboxRecord

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass
class Society:
    """What every turn of a simulation shares."""

    model: Model
    observer: Model  # may be another model than the agents'
    config: SandboxConfig
    questions: list[str]
    question_vectors: np.ndarray  # (len(questions), dim), from the run's embedder
    stances: list[str]  # each agent's initial stance
    bank: MemoryBank
    prompts: Prompts = field(default_factory=lambda: Prompts(PROMPTS_DIR))


def turn_id(round_: int, agent: int) -> str:
    return f"{round_id(round_)}-{agent_id(agent)}"


def turn_item(round_: int, agent: int, config: SandboxConfig, questions: list[str]) -> Item:
    """The runner item of one (round, agent); its question is a seeded draw from the pool."""
    q = derive_seed(config.seed, "question", round_, agent) % len(questions)
    return Item(
        id=turn_id(round_, agent),
        idx=(round_ - 1) * config.agents + agent,
        messages=({"role": "user", "content": questions[q]},),
        extra={"round": round_, "agent": agent, "question": q},
    )


async def run_turn(item: Item, society: Society) -> SandboxRecord:
    cfg, prompts = society.config, society.prompts
    round_, agent, q = item.extra["round"], item.extra["agent"], item.extra["question"]
    question = society.questions[q]

    def recall(who: int) -> list[Memory]:
        found = society.bank[who].recall(
            society.question_vectors[q], k=cfg.memory_k, threshold=cfg.memory_threshold, before_round=round_
        )
        return [Memory(question=m.question, answer=m.answer, similarity=m.similarity, source=m.source) for m in found]

    def seed(*step: object) -> int:
        return derive_seed(cfg.seed, item.id, *step)

    # 1. draft, with the agent's own memory
    memories = recall(agent)
    conversation = [{"role": "user", "content": prompts.render("draft", question=question, memories=memories)}]
    draft = await _say(society.model, conversation, cfg.temperature, cfg.max_tokens, seed("draft"), "draft")

    # 2. k neighbours rate the draft (each with its own memory); an observer rates it meanwhile
    raters = choose_raters(agent, cfg.grid, cfg.social_radius, cfg.raters, cfg.seed, round_)

    async def neighbour(rater: int) -> Feedback:
        prompt = prompts.render("rate", question=question, draft=draft, memories=recall(rater))
        result = await rate(society.model, prompt, cfg, seed("rate", rater))
        if isinstance(result, str):
            return Feedback(rater=rater, error=result)
        return Feedback(rater=rater, rating=result.rating, reason=result.reason)

    *feedback, observed_draft = await asyncio.gather(
        *(neighbour(r) for r in raters), observe(society.observer, prompts, cfg, question, draft, seed("observe", "draft"))
    )
    usable = [f for f in feedback if f.ok]
    if not usable:
        raise ItemFailed(f"no neighbour gave a usable rating of the draft; first error: {feedback[0].error}")
    mean_rating = sum(f.rating for f in usable) / len(usable)  # type: ignore[misc]

    # 3. revise, seeing the mean rating and all the feedback
    revise_request = prompts.render("revise", mean_rating=mean_rating, feedback=usable)
    conversation += [{"role": "assistant", "content": draft}, {"role": "user", "content": revise_request}]
    revision = await _say(society.model, conversation, cfg.temperature, cfg.revision_max_tokens, seed("revision"), "revision")

    # 4. an observer rates the revision (the revision reaches memory when the round ends)
    observed_revision = await observe(society.observer, prompts, cfg, question, revision, seed("observe", "revision"))
    return SandboxRecord(
        format=RECORD_FORMAT,
        round=round_,
        agent=agent,
        stance=society.stances[agent],
        question=question,
        memory=memories,
        draft=draft,
        feedback=list(feedback),
        mean_rating=round(mean_rating, 4),
        revise_request=revise_request,
        critic_request=prompts.render("critic", question=question, draft=draft),
        realign_request=prompts.render("realign", question=question, draft=draft),
        revision=revision,
        observed_draft=observed_draft,
        observed_revision=observed_revision,
    )


async def _say(model: Model, conversation: list[dict[str, str]], temperature: float, max_tokens: int, seed: int, step: str) -> str:
    option = "--revision-max-tokens" if step == "revision" else "--max-tokens"
    result = await whole_answer(model, conversation, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                what=f"agent's {step}", option=option)
    return result.text
