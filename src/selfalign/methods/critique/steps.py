"""Answer, critique against one principle, revise: three calls, one conversation."""

from __future__ import annotations

from pathlib import Path

from selfalign.errors import ItemFailed
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .config import CritiqueConfig, Principle
from .record import CritiqueRecord

PROMPTS_DIR = Path(__file__).parent / "prompts"


async def run_item(
    item: Item, model: Model, config: CritiqueConfig, principles: list[Principle], prompts: Prompts | None = None
) -> CritiqueRecord:
    prompts = prompts or Prompts(PROMPTS_DIR, config.templates)
    principle = principles[derive_seed(config.seed, item.id, "principle") % len(principles)]
    conversation = list(item.messages)

    async def say(step: str) -> str:
        result = await model.chat(
            conversation,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=derive_seed(config.seed, item.id, step),
        )
        if not result.text.strip():
            raise ItemFailed(f"the model's {step} is empty")
        conversation.append({"role": "assistant", "content": result.text})
        return result.text

    initial = await say("answer")
    conversation.append({"role": "user", "content": prompts.render("critique", principle=principle)})
    critique = await say("critique")
    conversation.append({"role": "user", "content": prompts.render("revise", principle=principle)})
    revision = await say("revision")
    return CritiqueRecord(principle=principle.name, initial=initial, critique=critique, revision=revision)
