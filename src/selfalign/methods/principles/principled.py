"""Stage 2: principle-driven self-alignment. The prompt holds the principles and in-context
exemplars in which the assistant first writes internal thoughts naming the rules that apply,
then its answer; for each question the model continues "Assistant (internal thoughts):".

One call an item. The record keeps the thoughts, the principles cited (numbers resolved to
names) and the answer, and whether the answer is kept or why it is dropped: the format lost (no
"Assistant:" after the thoughts), truncated (cut at max_tokens without a repetition to cut at),
exemplar leakage, a bare refusal (an apology or refusal with no reason), too short. Text after
the first repeated sentence is cut first. Dropped answers stay in the run, counted by reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.export import Exported, Records, per_record, sft_row
from selfalign.store.inputs import Item

from .calls import ask
from .config import PrinciplesConfig
from .files import Exemplar, Principle, cited_numbers
from .filters import answer_problem, cut_repetition, split_thoughts

#: Where a base model's continuation ends: the next turn.
STOP = ("\nUser:",)


class PrincipledRecord(BaseModel):
    text: str  # the model's continuation as written
    thoughts: str
    principles: list[str]  # cited, in order, by name
    answer: str
    dropped: str | None = None  # why the answer is not training data; None: kept


async def run_item(
    item: Item, model: Model, config: PrinciplesConfig, principles: list[Principle], exemplars: list[Exemplar],
    prompts: Prompts, raw: bool,
) -> PrincipledRecord:
    prompt = prompts.render("principled", principles=principles, exemplars=exemplars, question=item.prompt)
    result = await ask(model, prompt, raw=raw, seed=derive_seed(config.seed, item.id, "principled"),
                       temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, stop=STOP)
    leaks = [phrase for exemplar in exemplars for phrase in exemplar.leaks]
    return judge(item.prompt, result.text, result.finish_reason, principles, leaks)


def judge(question: str, text: str, finish_reason: str, principles: list[Principle], leaks: list[str]) -> PrincipledRecord:
    """Thoughts, citations and answer of a continuation, and whether the answer is kept."""
    parts = split_thoughts(text)
    if parts is None:
        return PrincipledRecord(text=text, thoughts="", principles=[], answer="", dropped="format lost")
    thoughts, answer = parts
    names = {p.id: p.name for p in principles}
    cited = [names[n] for n in cited_numbers(thoughts) if n in names]
    cut = cut_repetition(answer)
    if finish_reason == "length" and cut == answer:
        problem: str | None = "truncated"
    else:
        problem = answer_problem(cut, question, leaks)
    return PrincipledRecord(text=text, thoughts=thoughts, principles=cited, answer=cut, dropped=problem)


def tally(records: list[tuple[Item, dict[str, Any]]]) -> dict[str, Any]:
    """Dropped answers by reason, and how often each principle was cited."""
    dropped = Counter(r["dropped"] for _, r in records if r["dropped"])
    cited = Counter(name for _, r in records for name in r["principles"])
    return {"kept": sum(1 for _, r in records if not r["dropped"]),
            "dropped": dict(sorted(dropped.items())), "principles_cited": dict(cited.most_common())}


def _sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    """Engraving data: the question and the answer alone (principles, exemplars, thoughts pruned)."""
    return record["dropped"] or [sft_row(list(item.messages), record["answer"])]


def _thoughts(records: Records) -> Exported:
    """Every answer with its thoughts, citations and verdict, for inspection."""
    out = Exported()
    for item, record in records:
        out.rows.append({**sft_row(list(item.messages), record["answer"]), "thoughts": record["thoughts"],
                         "principles": record["principles"], "dropped": record["dropped"]})
    return out


EXPORTS = {"sft": per_record(_sft), "thoughts": _thoughts}
