"""Stage 2: principle-driven self-alignment. The prompt holds the principles and in-context
exemplars in which the assistant first writes internal thoughts (opening with its
self-identification line, then naming the rules that apply), then its answer; for each question
the model continues "Assistant (internal thoughts):". As in the reference, the answer may not
start with "Sorry": a logit bias of -100 on that token, where the provider takes one.

One call an item. The record keeps the thoughts, the principles cited (numbers resolved to
names) and the answer, and whether the answer is kept or why it is dropped (the reference's
filters, training/step2_*/merge_and_fileter_self_align_with_dummy.py): the answer marker
missing ("format lost"), the self-identification line missing, an answer that starts with an
apology, the thoughts' self-identification line repeated in the answer, exemplar leakage, a
bare refusal (no reason given), a finished answer shorter than 160 characters. The answer is first cut at its first repeated sentence; an answer cut at max_tokens
is kept less its last word. Dropped answers stay in the run, counted by reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.export import Exported, Records, per_record, sft_row
from selfalign.store.inputs import Item

from .calls import ask
from .config import PrinciplesConfig
from .files import Exemplar, Principle, cited_numbers
from .filters import (
    answer_problem, cut_repetition, identifies_itself, skip_rethinking, split_thoughts, without_last_word,
)

#: Where a base model's continuation ends: the next turn.
STOP = ("\nUser:",)


#: The word the reference keeps answers from starting with, by a logit bias on its token.
SORRY = ("Sorry", " Sorry")


class PrincipledRecord(BaseModel):
    text: str  # the model's continuation as written
    thoughts: str
    principles: list[str]  # cited, in order, by name
    answer: str
    dropped: str | None = None  # why the answer is not training data; None: kept
    system: str = ""  # the short system prompt engraving trains with (prompts/system.j2)


async def run_item(
    item: Item, model: Model, config: PrinciplesConfig, principles: list[Principle], exemplars: list[Exemplar],
    prompts: Prompts, raw: bool, logit_bias: dict[int, float] | None = None,
) -> PrincipledRecord:
    prompt = render(prompts, principles, exemplars, config, item.prompt)
    result = await ask(model, prompt, raw=raw, seed=derive_seed(config.seed, item.id, "principled"),
                       temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, stop=STOP,
                       logit_bias=logit_bias, ngram_penalties=config.ngram_penalties)
    leaks = [phrase for exemplar in exemplars for phrase in exemplar.leaks]
    record = judge(item.prompt, result.text, result.finish_reason, principles, leaks, config.identity)
    return record.model_copy(update={"system": prompts.render("system")})


def sorry_bias(model: Model, bias: float) -> tuple[dict[int, float] | None, str | None]:
    """The reference's logit bias against "Sorry" (-100 on its token, so no answer starts with
    it), on each form of the word that is one token in this model's vocabulary; and a note when
    there is none to bias (a remote model's tokenizer is not here, or the word is split)."""
    if not bias:
        return None, None
    forms = {form: model.token_ids(form) for form in SORRY}
    if any(ids is None for ids in forms.values()):
        return None, (f"{model.name}: its tokenizer is not here, so no logit bias keeps answers from starting with "
                      "'Sorry'; answers that start with an apology are dropped instead")
    single = {ids[0]: bias for ids in forms.values() if ids and len(ids) == 1}
    split = [form for form, ids in forms.items() if ids and len(ids) > 1]
    note = (f"{model.name}: {' and '.join(repr(f) for f in split)} {'is' if len(split) == 1 else 'are'} several "
            "tokens here, left unbiased (biasing a piece of a word would bias every word that starts with it)"
            ) if split else None
    return single or None, note


def check_fits(model: Model, prompts: Prompts, principles: list[Principle], exemplars: list[Exemplar],
               config: PrinciplesConfig, questions: list[str]) -> None:
    """Refuse, before any call, a prompt that cannot hold the longest question and an answer of
    max_tokens in the model's context, with the token counts and what to change."""
    context = model.context_length
    count = lambda text: len(model.token_ids(text) or [])  # noqa: E731
    if context is None or model.token_ids("") is None or not questions:
        return
    longest = max(questions, key=count)
    whole = count(render(prompts, principles, exemplars, config, longest))
    rules = count(render(prompts, principles, [], config, ""))
    question = count(longest)
    if whole + config.max_tokens > context:
        raise UserError(
            f"{model.name} holds {context} tokens, and the principled prompt of the longest question is {whole} "
            f"(principles and instructions {rules}, exemplars {whole - rules - question}, question {question}) "
            f"with up to {config.max_tokens} for the answer. Fix: --exemplars FILE with fewer or shorter exemplars "
            f"({len(exemplars)} now), or --max-tokens below {max(context - whole, 0)}, or shorter --principles")


def render(prompts: Prompts, principles: list[Principle], exemplars: list[Exemplar], config: PrinciplesConfig,
           question: str) -> str:
    return prompts.render("principled", principles=principles, exemplars=exemplars, identity=config.identity,
                          question=question)


def judge(
    question: str, text: str, finish_reason: str, principles: list[Principle], leaks: list[str], identity: str,
) -> PrincipledRecord:
    """Thoughts, citations and answer of a continuation, and whether the answer is kept."""
    parts = split_thoughts(text)
    if parts is None:
        return PrincipledRecord(text=text, thoughts="", principles=[], answer="", dropped="format lost")
    thoughts, answer, next_turn = parts
    names = {p.id: p.name for p in principles}
    cited = [names[n] for n in cited_numbers(thoughts) if n in names]
    if not identifies_itself(thoughts, identity):
        return PrincipledRecord(text=text, thoughts=thoughts, principles=cited, answer=answer,
                                dropped="self-identification missing")
    answered = skip_rethinking(answer, identity)
    if answer and not answered:  # nothing but thoughts again
        return PrincipledRecord(text=text, thoughts=thoughts, principles=cited, answer=answer,
                                dropped="thoughts repeated in the answer")
    answer = answered
    cut = cut_repetition(answer)
    finished = next_turn or finish_reason != "length"
    if not finished and cut == answer:  # cut at max_tokens mid-sentence: the last word may be split
        cut = without_last_word(cut)
    problem = answer_problem(cut, question, leaks, finished=finished and cut == answer.strip(), identity=identity)
    return PrincipledRecord(text=text, thoughts=thoughts, principles=cited, answer=cut, dropped=problem)


def tally(records: list[tuple[Item, dict[str, Any]]]) -> dict[str, Any]:
    """Dropped answers by reason, and how often each principle was cited."""
    dropped = Counter(r["dropped"] for _, r in records if r["dropped"])
    cited = Counter(name for _, r in records for name in r["principles"])
    return {"kept": sum(1 for _, r in records if not r["dropped"]),
            "dropped": dict(sorted(dropped.items())), "principles_cited": dict(cited.most_common())}


def _sft(item: Item, record: dict[str, Any]) -> list[dict[str, Any]] | str:
    """Engraving data: the short system prompt, the question and the answer (principles,
    exemplars and thoughts pruned), as the reference trains with its short system prompt."""
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return record["dropped"] or [sft_row([*system, *item.messages], record["answer"])]


def _thoughts(records: Records) -> Exported:
    """Every answer with its thoughts, citations and verdict, for inspection."""
    out = Exported()
    for item, record in records:
        out.rows.append({**sft_row(list(item.messages), record["answer"]), "thoughts": record["thoughts"],
                         "principles": record["principles"], "dropped": record["dropped"]})
    return out


EXPORTS = {"sft": per_record(_sft), "thoughts": _thoughts}
