"""Stage 4: verbose cloning. The engraved model answers every question again under a prompt
that asks for thorough, well-structured answers (prompts/verbose.j2, as a system message, or
above the question for a raw-text model); the `sft` export pairs each question with its answer
alone, so training the base model on it distils the prompt away (context distillation).

Answers are dropped, counted by reason, when truncated at max_tokens, shorter than 128
characters (`min_chars`), repetitive, or when they repeat the prompt's own words (prompt leakage).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.export import per_record, sft_row
from selfalign.store.inputs import Item

from .config import VerboseConfig
from .filters import verbose_problem

STOP = ("\nUser:",)


class VerboseRecord(BaseModel):
    answer: str
    finish_reason: str
    dropped: str | None = None  # why the answer is not training data; None: kept


async def run_item(item: Item, model: Model, config: VerboseConfig, prompts: Prompts, raw: bool) -> VerboseRecord:
    persona = prompts.render("verbose")
    sampling = dict(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens,
                    seed=derive_seed(config.seed, item.id, "verbose"))
    if raw:
        result = await model.text(f"{persona}\n\nUser: {item.prompt}\n\nAssistant:", stop=STOP, **sampling)
    else:
        result = await model.chat([{"role": "system", "content": persona}, *item.messages], **sampling)
    answer = result.text.strip()
    return VerboseRecord(answer=answer, finish_reason=result.finish_reason,
                         dropped=verbose_problem(answer, result.finish_reason, persona, config.min_chars))


def tally(records: list[tuple[Item, dict[str, Any]]]) -> dict[str, Any]:
    dropped = Counter(r["dropped"] for _, r in records if r["dropped"])
    return {"kept": sum(1 for _, r in records if not r["dropped"]), "dropped": dict(sorted(dropped.items()))}


def _sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    return record["dropped"] or [sft_row(list(item.messages), record["answer"])]


EXPORTS = {"sft": per_record(_sft)}
