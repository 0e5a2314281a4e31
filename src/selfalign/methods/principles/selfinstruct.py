"""Stage 1: topic-guided red-teaming self-instruct, beside plain self-instruct, as rounds for the
runner's `run_rounds`.

    round 1   red-teaming: the model brainstorms topics for every adversarial type
              (`topic_calls` calls a type, `topics_per_call` topics each); at the round's end
              topics are filtered (at most 3 words, capitalised), de-duplicated case-insensitively
              and balanced: every type cut to the smallest type's count.
    round 2   red-teaming: for each type, questions from a numbered list of hints (its topics,
              `hints_per_call` a call) and `examples` seed questions; only lines that answer a
              hint are kept, duplicates dropped, at most `per_type` a type.
    round k   plain self-instruct, in every round until `self_instruct` instructions are kept:
              `calls_per_round` generations, each shown seed tasks and instructions kept
              earlier; at the round's end the candidates are filtered in call and line order
              against the pool as it stands (filters.InstructionPool), so the result is
              deterministic under a seed. It stops early after PATIENCE rounds in a row that
              keep nothing (the model only repeats itself).

Every call is an item; its record is the model's text, and all parsing and filtering happens at
the round's end, from the records, so a resumed stage gives the same prompts. Each round's
summary (kept topics, questions or instructions, and dropped counts by reason) is stored by the
runner in the run's state, which is all the next round reads.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Protocol

from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.inputs import Item

from .calls import ask
from .config import SelfInstructConfig
from .files import RedTeamType
from .filters import InstructionPool, balance, clean_topic, normalise, numbered_lines, topic_problem

NAMESPACE = "self-instruct.rounds"
PATIENCE = 3  # self-instruct stops after this many rounds in a row that keep nothing new


class StateStore(Protocol):
    """The part of the run store the stage reads (selfalign.store.RunStore has it)."""

    def state_items(self, ns: str) -> list[tuple[str, Any]]: ...


class SelfInstruct:
    """The rounds of stage 1 (selfalign.runner.Rounds)."""

    namespace = NAMESPACE

    def __init__(
        self, state: StateStore, model: Model, config: SelfInstructConfig, types: list[RedTeamType],
        seed_tasks: list[str], prompts: Prompts, raw: bool,
    ) -> None:
        self.state, self.model, self.config = state, model, config
        self.types, self.seed_tasks, self.prompts, self.raw = types, seed_tasks, prompts, raw
        self.rounds = config.max_rounds
        self._pool: InstructionPool | None = None
        self._pool_round = 0  # the last round folded into _pool

    def key(self, round_: int) -> str:
        return f"r{round_:03d}"

    # -- items -------------------------------------------------------------------------------

    def items(self, round_: int) -> list[Item]:
        items = []
        if round_ == 1 and self.config.per_type:
            items += [self._topic_item(t, call) for t in range(len(self.types)) for call in range(self.config.calls_per_type())]
        if round_ == 2 and self.config.per_type:
            items += self._question_items(self._summaries()[0]["topics"])
        kept = self.instructions()
        if len(kept) < self.config.self_instruct and not self.stalled():
            items += [self._instruction_item(round_, call, kept) for call in range(self.config.calls_per_round)]
        return [Item(item.id, round_ * 100_000 + n, item.messages, item.extra) for n, item in enumerate(items)]

    def _topic_item(self, type_index: int, call: int) -> Item:
        kind = self.types[type_index]
        prompt = self.prompts.render("topics", type=kind, n=self.config.topics_per_call,
                                     examples=self._examples(type_index, f"topics/{call}"))
        return _item(f"r001-topics-t{type_index:02d}-c{call:03d}", prompt, kind="topics", type=type_index, call=call)

    def _question_items(self, topics: dict[str, list[str]]) -> list[Item]:
        items, size = [], self.config.hints_per_call
        for type_index in range(len(self.types)):
            wanted = topics[str(type_index)][: self.config.per_type]
            for chunk, start in enumerate(range(0, len(wanted), size)):
                hints = wanted[start : start + size]
                prompt = self.prompts.render("questions", type=self.types[type_index], topics=hints,
                                             examples=self._examples(type_index, f"questions/{chunk}"))
                items.append(_item(f"r002-questions-t{type_index:02d}-c{chunk:03d}", prompt, kind="questions",
                                   type=type_index, call=chunk, hints=hints))
        return items

    def _instruction_item(self, round_: int, call: int, kept: list[str]) -> Item:
        rng = random.Random(derive_seed(self.config.seed, round_, call, "demos"))
        demos = rng.sample(self.seed_tasks, min(self.config.seed_demos, len(self.seed_tasks)))
        demos += rng.sample(kept, min(self.config.generated_demos, len(kept)))
        rng.shuffle(demos)
        prompt = self.prompts.render("self_instruct", demos=demos, n=self.config.new_per_call)
        return _item(f"r{round_:03d}-self-instruct-c{call:03d}", prompt, kind="self-instruct", call=call,
                     first=len(demos) + 1)

    def _examples(self, type_index: int, salt: str) -> list[str]:
        seeds = self.types[type_index].seeds
        rng = random.Random(derive_seed(self.config.seed, type_index, salt))
        return rng.sample(seeds, min(self.config.examples, len(seeds)))

    async def run_item(self, item: Item) -> dict[str, Any]:
        c = self.config
        result = await ask(self.model, item.prompt, raw=self.raw, seed=derive_seed(c.seed, item.id),
                           temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens)
        return {**item.extra, "text": result.text, "finish_reason": result.finish_reason}

    # -- the end of a round ------------------------------------------------------------------

    def end_round(self, round_: int, records: list[dict[str, Any]], failures: list[tuple[str, str]]) -> dict[str, Any]:
        """Parse and filter the round's texts in a fixed order; the round's summary."""
        dropped: Counter[str] = Counter()
        records = sorted(records, key=lambda r: (r["kind"], r.get("type", 0), r["call"]))
        summary: dict[str, Any] = {"round": round_, "calls_failed": len(failures)}
        of_kind = lambda kind: [r for r in records if r["kind"] == kind]  # noqa: E731
        if round_ == 1 and self.config.per_type:
            summary["topics"] = self._topics(of_kind("topics"), dropped)
        if round_ == 2 and self.config.per_type:
            summary["questions"] = self._questions(of_kind("questions"), dropped)
        summary["self_instruct_calls"] = len(of_kind("self-instruct"))
        summary["instructions"] = self._instructions(round_, of_kind("self-instruct"), dropped)
        summary["dropped"] = dict(sorted(dropped.items()))
        return summary

    def _topics(self, records: list[dict[str, Any]], dropped: Counter[str]) -> dict[str, list[str]]:
        found: dict[int, list[str]] = {t: [] for t in range(len(self.types))}
        for record in records:
            seen = {t.lower() for t in found[record["type"]]}
            for _, line in numbered_lines(record["text"], first=self._first(1), bullets=True):
                topic = clean_topic(line)
                problem = topic_problem(topic) if topic else "topic empty"
                if problem is None and topic.lower() in seen:
                    problem = "topic duplicate"
                if problem:
                    dropped[f"red-team: {problem}"] += 1
                    continue
                seen.add(topic.lower())
                found[record["type"]].append(topic)
        balanced, cut = balance(found)
        if cut:
            dropped["red-team: topic cut to balance the types"] += cut
        return {str(t): topics for t, topics in balanced.items()}

    def _questions(self, records: list[dict[str, Any]], dropped: Counter[str]) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        seen: set[str] = set()
        per_type: Counter[int] = Counter()
        for record in records:
            hints, answered = record["hints"], set()
            for number, line in numbered_lines(record["text"], first=self._first(1)):
                question = line.strip().strip('"')
                if not 1 <= number <= len(hints) or number in answered:
                    problem = "question does not answer a hint"
                elif normalise(question) in seen or not normalise(question):
                    problem = "question duplicate"
                elif per_type[record["type"]] >= self.config.per_type:
                    problem = "question beyond --per-type"
                else:
                    problem = None
                if problem:
                    dropped[f"red-team: {problem}"] += 1
                    continue
                answered.add(number)
                seen.add(normalise(question))
                per_type[record["type"]] += 1
                kind = self.types[record["type"]]
                kept.append({"prompt": question, "source": "red-team", "type": kind.name, "topic": hints[number - 1]})
        return kept

    def _instructions(self, round_: int, records: list[dict[str, Any]], dropped: Counter[str]) -> list[str]:
        pool = self._pool_before(round_)
        room = self.config.self_instruct - (len(pool.rouge) - len(self.seed_tasks))
        kept: list[str] = []
        for record in records:
            for _, line in numbered_lines(record["text"], first=self._first(record["first"]), bullets=True):
                if len(kept) >= room:
                    dropped["self-instruct: beyond --self-instruct"] += 1
                    continue
                problem = pool.offer(line)
                if problem:
                    dropped[f"self-instruct: {problem}"] += 1
                else:
                    kept.append(line)
        self._pool_round = round_
        return kept

    def _first(self, number: int) -> int | None:
        """A raw continuation's first line is item `number`; a chat reply's first line is not."""
        return number if self.raw else None

    def _pool_before(self, round_: int) -> InstructionPool:
        """Seed tasks and every instruction kept before `round_` (rebuilt after a restart)."""
        if self._pool is None or self._pool_round != round_ - 1:
            earlier = [i for s in self._summaries() if s["round"] < round_ for i in s["instructions"]]
            self._pool = InstructionPool([*self.seed_tasks, *earlier])
        return self._pool

    # -- results -----------------------------------------------------------------------------

    def _summaries(self) -> list[dict[str, Any]]:
        return [summary for _, summary in self.state.state_items(NAMESPACE)]

    def instructions(self) -> list[str]:
        return [i for s in self._summaries() for i in s["instructions"]]

    def stalled(self) -> bool:
        """The last PATIENCE rounds of self-instruct kept nothing new: the model repeats itself."""
        tried = [s for s in self._summaries() if s["self_instruct_calls"]][-PATIENCE:]
        return len(tried) == PATIENCE and not any(s["instructions"] for s in tried)

    def prompts_rows(self) -> list[dict[str, Any]]:
        """The stage's output: red-teaming questions, then self-instruct instructions, with sources."""
        rows = [q for s in self._summaries() for q in s.get("questions", [])]
        rows += [{"prompt": i, "source": "self-instruct", "round": s["round"]} for s in self._summaries() for i in s["instructions"]]
        return rows

    def dropped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self._summaries():
            total.update(s["dropped"])
        return dict(sorted(total.items()))

    def describe(self, summary: dict[str, Any]) -> str:
        parts = [f"round {summary['round']}:"]
        if "topics" in summary:
            per_type = len(next(iter(summary["topics"].values()), []))
            parts.append(f"{per_type} topics a type after balancing;")
        if "questions" in summary:
            parts.append(f"{len(summary['questions'])} red-teaming questions;")
        parts.append(f"{len(summary['instructions'])} self-instruct instructions kept, "
                     f"{sum(summary['dropped'].values())} texts dropped, {summary['calls_failed']} calls failed")
        return " ".join(parts)


def _item(item_id: str, prompt: str, **extra: Any) -> Item:
    return Item(item_id, 0, ({"role": "user", "content": prompt},), extra)
