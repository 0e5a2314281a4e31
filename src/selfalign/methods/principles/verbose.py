"""Stage 4: verbose cloning. The engraved model answers every question again under a prompt
that asks for extensive, detailed answers (prompts/verbose.j2: the short system prompt it was
engraved with, then the persona; as a system message, or above the question for a raw-text
model), decoded with the reference's n-gram penalties (3-gram 1.0, 4-gram 2.0) where the
provider takes them. The `sft` export pairs each question, under the short system prompt alone,
with its answer, so training the base model on it distils the persona away (context
distillation).

Answers are merged as the reference merges them (filters.merge_verbose: cut at the next turn,
less the last word when cut at max_tokens, cut at the first repeated sentence and at a list's
13th item) and dropped, counted by reason, when empty, cut and shorter than 128 characters
(`min_chars`), ending in an encyclopaedia's "See also", or repeating the persona's own words.
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
from .filters import merge_verbose, verbose_problem

STOP = ("\nUser:",)


class VerboseRecord(BaseModel):
    answer: str
    finish_reason: str
    dropped: str | None = None  # why the answer is not training data; None: kept
    system: str = ""  # the short system prompt the final model trains with (prompts/system.j2)


async def run_item(item: Item, model: Model, config: VerboseConfig, prompts: Prompts, raw: bool) -> VerboseRecord:
    system = prompts.render("system")
    persona = prompts.render("verbose", system=system)
    sampling = dict(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens,
                    seed=derive_seed(config.seed, item.id, "verbose"), ngram_penalties=config.ngram_penalties or None)
    if raw:
        result = await model.text(f"{persona}\n\nUser: {item.prompt}\n\nAssistant:", stop=STOP, **sampling)
    else:
        result = await model.chat([{"role": "system", "content": persona}, *item.messages], **sampling)
    answer, finished = merge_verbose(result.text, result.finish_reason)
    return VerboseRecord(answer=answer, finish_reason=result.finish_reason, system=system,
                         dropped=verbose_problem(answer, finished, persona, config.min_chars))


def tally(records: list[tuple[Item, dict[str, Any]]]) -> dict[str, Any]:
    dropped = Counter(r["dropped"] for _, r in records if r["dropped"])
    return {"kept": sum(1 for _, r in records if not r["dropped"]), "dropped": dict(sorted(dropped.items()))}


def _sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return record["dropped"] or [sft_row([*system, *item.messages], record["answer"])]


EXPORTS = {"sft": per_record(_sft)}
