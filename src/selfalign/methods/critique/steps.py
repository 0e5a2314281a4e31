"""Answer, critique against one principle, revise: three calls, one conversation.

As in Constitutional AI, the answer is the model's own (no exemplars in front of it); the
critique and the revision are asked for after the few-shot exemplars, each given as the six
turns of a conversation (request, answer, critique request, critique, revision request,
revision), so a small model copies the exemplars' behaviour rather than relying on its own
judgement. A helpfulness prompt (`"red_team": false` in its row) is answered only. With
`revision_start`, the revision is started with that text and the model continues it.
"""

from __future__ import annotations

from pathlib import Path

from selfalign.errors import ItemFailed
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .config import CritiqueConfig, Exemplar, Principle
from .record import CritiqueRecord

PROMPTS_DIR = Path(__file__).parent / "prompts"


async def run_item(
    item: Item,
    model: Model,
    config: CritiqueConfig,
    principles: list[Principle],
    prompts: Prompts | None = None,
    exemplars: list[Exemplar] = (),  # type: ignore[assignment]
) -> CritiqueRecord:
    prompts = prompts or Prompts(PROMPTS_DIR, config.templates)
    principle = principles[derive_seed(config.seed, item.id, "principle") % len(principles)]

    async def say(conversation: list[dict[str, str]], step: str, start: str = "") -> str:
        started = [{"role": "assistant", "content": start}] if start else []
        result = await model.chat(
            conversation + started,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=derive_seed(config.seed, item.id, step),
        )
        if not (start + result.text).strip():  # a started revision may end at once: its start is the revision
            raise ItemFailed(f"the model's {step} is empty")
        conversation.append({"role": "assistant", "content": start + result.text})
        return start + result.text

    initial = await say(list(item.messages), "answer")
    if item.extra.get("red_team") is False:
        return CritiqueRecord(red_team=False, principle="", initial=initial, critique="", revision=initial)
    shots = [turn for exemplar in exemplars for turn in exemplar.turns()]
    conversation = [*shots, *item.messages, {"role": "assistant", "content": initial}]
    conversation.append({"role": "user", "content": prompts.render("critique", principle=principle)})
    critique = await say(conversation, "critique")
    conversation.append({"role": "user", "content": prompts.render("revise", principle=principle)})
    revision = await say(conversation, "revision", config.revision_start or "")
    return CritiqueRecord(principle=principle.name, initial=initial, critique=critique, revision=revision)
