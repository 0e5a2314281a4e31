"""Stage 1: topic-guided red-teaming self-instruct, beside plain self-instruct, as rounds for the
runner's `run_rounds` (the reference: IBM/Dromedary v1, training/step1_*).

    topic rounds     for every type still short of `per_type` new topics, the model continues a
                     numbered list of the type's topics so far (its seed topics at first;
                     `topics_shown` of them a call); new lines are filtered (one to three words,
                     capitalised, no final punctuation) and de-duplicated case-insensitively.
                     A type stops growing when it has its topics; the rounds stop when
                     every type has them, when a round adds none, or after `topic_rounds`.
    question round   the types are balanced: each cut to the smallest count among the types that
                     have topics (a type with none is reported and left out, never all cut to
                     zero). The (type, topic) hints are shuffled and asked `hints_per_call` at a
                     time, beside `examples` seed questions of mixed types, under a prompt asking
                     for questions a model cannot answer or answers with wrong facts; only lines
                     that answer a new hint are kept, one question a hint.
    every round      plain self-instruct until `self_instruct` tasks are kept: `calls_per_round`
                     generations in the Alpaca format (instruction and input), each shown
                     `demos` tasks from the seeds and the tasks kept earlier; at the round's end the
                     candidates are filtered in call and block order against the pool as it stands
                     (filters.InstructionPool), so the result is deterministic under a seed. It
                     stops after PATIENCE rounds in a row that keep nothing, or `max_rounds`.

Every call is an item whose record is the model's text; parsing and filtering happen at the
round's end, from the records, so a resumed stage gives the same prompts. Each round's summary
(new topics, questions or tasks, and the texts dropped by reason) is kept by the runner in the
run's state, which is all the next round reads.
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
from .files import RedTeamType, SeedTask
from .filters import InstructionPool, alpaca_tasks, balance, clean_topic, numbered_lines, topic_problem
from .questions import parse_questions, red_team_hints, seed_examples

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
        seed_tasks: list[SeedTask], prompts: Prompts, raw: bool,
    ) -> None:
        self.state, self.model, self.config = state, model, config
        self.types, self.seed_tasks, self.prompts, self.raw = types, seed_tasks, prompts, raw
        self.rounds = config.max_rounds + config.topic_rounds + 1
        self._pool: InstructionPool | None = None
        self._pool_round = 0  # the last round folded into _pool

    def key(self, round_: int) -> str:
        return f"r{round_:03d}"

    # -- what a round does ---------------------------------------------------------------------

    def phase(self, round_: int) -> str | None:
        """"topics", "questions" or None (red-teaming done, or not asked for) for `round_`."""
        earlier = [s for s in self._summaries() if s["round"] < round_]
        if not self.config.per_type or any("questions" in s for s in earlier):
            return None
        topic_rounds = [s for s in earlier if "topics" in s]
        if len(topic_rounds) < self.config.topic_rounds and self.growing(round_):
            return "topics"
        return "questions"

    def growing(self, round_: int) -> list[int]:
        """Types short of `per_type` topics, unless the last topic round added none at all."""
        earlier = [s for s in self._summaries() if s["round"] < round_ and "topics" in s]
        if earlier and not any(earlier[-1]["topics"].values()):
            return []
        found = self.new_topics(round_)
        return [t for t in range(len(self.types)) if len(found[t]) < self.config.per_type]

    def new_topics(self, round_: int) -> dict[int, list[str]]:
        """Each type's topics that the rounds before `round_` added (seed topics, which have a
        question already, only start the list)."""
        found: dict[int, list[str]] = {t: [] for t in range(len(self.types))}
        for s in self._summaries():
            if s["round"] < round_:
                for t, added in s.get("topics", {}).items():
                    found[int(t)] += added
        return found

    def self_instruct_rounds(self, round_: int) -> int:
        return sum(1 for s in self._summaries() if s["round"] < round_ and s["self_instruct_calls"])

    # -- items -------------------------------------------------------------------------------

    def items(self, round_: int) -> list[Item]:
        items = []
        phase = self.phase(round_)
        if phase == "topics":
            found = self.new_topics(round_)
            for t in self.growing(round_):
                calls = self.config.calls_per_type(self.config.per_type - len(found[t]))
                items += [self._topic_item(round_, t, call, self.types[t].topics + found[t]) for call in range(calls)]
        elif phase == "questions":
            items += self._question_items(round_)
        kept = self.instructions(before=round_)
        if (len(kept) < self.config.self_instruct and not self.stalled(round_)
                and self.self_instruct_rounds(round_) < self.config.max_rounds):
            items += [self._instruction_item(round_, call, kept) for call in range(self.config.calls_per_round)]
        return [Item(item.id, round_ * 100_000 + n, item.messages, item.extra) for n, item in enumerate(items)]

    def _topic_item(self, round_: int, type_index: int, call: int, topics: list[str]) -> Item:
        rng = random.Random(derive_seed(self.config.seed, round_, type_index, call, "topics"))
        shown = rng.sample(topics, min(self.config.topics_shown, len(topics)))
        prompt = self.prompts.render("topics", type=self.types[type_index], n=self.config.topics_per_call, topics=shown)
        return _item(f"{self.key(round_)}-topics-t{type_index:02d}-c{call:03d}", prompt, kind="topics",
                     type=type_index, call=call, first=len(shown) + 1)

    def _question_items(self, round_: int) -> list[Item]:
        balanced, _, _ = self.balanced_topics(round_)
        hints = red_team_hints(self.types, balanced, seed=derive_seed(self.config.seed, "hints"))
        items, size = [], self.config.hints_per_call
        for call, start in enumerate(range(0, len(hints), size)):
            chunk = hints[start : start + size]
            examples = seed_examples(self.types, self.config.examples, derive_seed(self.config.seed, round_, call, "examples"))
            prompt = self.prompts.render("questions", hints=[*examples, *chunk], examples=examples) + "\n"
            items.append(_item(f"{self.key(round_)}-questions-c{call:03d}", prompt, kind="questions", call=call,
                               hints=[(h.type_index, h.topic) for h in chunk], examples=len(examples)))
        return items

    def _instruction_item(self, round_: int, call: int, kept: list[dict[str, str]]) -> Item:
        rng = random.Random(derive_seed(self.config.seed, round_, call, "demos"))
        pool = [{"instruction": t.instruction, "input": t.input} for t in self.seed_tasks] + kept
        demos = rng.sample(pool, min(self.config.demos, len(pool)))
        prompt = self.prompts.render("self_instruct", demos=demos, n=self.config.new_per_call)
        return _item(f"{self.key(round_)}-self-instruct-c{call:03d}", prompt, kind="self-instruct", call=call,
                     first=len(demos) + 1)

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
        phase = self.phase(round_)
        if phase == "topics":
            summary["topics"] = self._topics(round_, of_kind("topics"), dropped)
        elif phase == "questions":
            balanced, left_out, cut = self.balanced_topics(round_)
            if cut:
                dropped["red-team: topic cut to balance the types"] += cut
            summary["left_out"] = [self.types[t].name for t in left_out]
            summary["questions"] = parse_questions(of_kind("questions"), self.types, self.config.per_type, dropped)
        summary["self_instruct_calls"] = len(of_kind("self-instruct"))
        summary["instructions"] = self._instructions(round_, of_kind("self-instruct"), dropped)
        summary["dropped"] = dict(sorted(dropped.items()))
        return summary

    def _topics(self, round_: int, records: list[dict[str, Any]], dropped: Counter[str]) -> dict[str, list[str]]:
        found = self.new_topics(round_)
        added: dict[int, list[str]] = {}
        for record in records:
            t = record["type"]
            seen = {topic.lower() for topic in self.types[t].topics + found[t] + added.get(t, [])}
            for _, line in numbered_lines(record["text"], first=self._first(record["first"]), bullets=True):
                topic = clean_topic(line)
                problem = topic_problem(topic)
                if problem is None and topic.lower() in seen:
                    problem = "topic duplicate"
                if problem:
                    dropped[f"red-team: {problem}"] += 1
                    continue
                seen.add(topic.lower())
                added.setdefault(t, []).append(topic)
        return {str(t): topics for t, topics in sorted(added.items())}

    def balanced_topics(self, round_: int) -> tuple[dict[int, list[str]], list[int], int]:
        """The topics found before `round_`, balanced (filters.balance)."""
        return balance(self.new_topics(round_), self.config.per_type)

    def _instructions(self, round_: int, records: list[dict[str, Any]], dropped: Counter[str]) -> list[dict[str, str]]:
        pool = self._pool_before(round_)
        room = self.config.self_instruct - len(self.instructions(before=round_))
        kept: list[dict[str, str]] = []
        for record in records:
            text = record["text"]
            if self.raw:  # the prompt ends with the next task's "N. Instruction:"
                text = f"{record['first']}. Instruction:{text}"
            for task in alpaca_tasks(text, truncated=record.get("finish_reason") == "length"):
                if isinstance(task, str):
                    dropped[f"self-instruct: {task}"] += 1
                    continue
                instruction, input_ = task
                if len(kept) >= room:
                    dropped["self-instruct: beyond --self-instruct"] += 1
                    continue
                problem = pool.offer(instruction, input_)
                if problem:
                    dropped[f"self-instruct: {problem}"] += 1
                else:
                    kept.append({"instruction": instruction, "input": input_})
        self._pool_round = round_
        return kept

    def _first(self, number: int) -> int | None:
        """A raw continuation's first line is item `number`; a chat reply's first line is not."""
        return number if self.raw else None

    def _pool_before(self, round_: int) -> InstructionPool:
        """Seed tasks and every instruction kept before `round_` (rebuilt after a restart)."""
        if self._pool is None or self._pool_round != round_ - 1:
            earlier = [task["instruction"] for task in self.instructions(before=round_)]
            self._pool = InstructionPool([*(t.instruction for t in self.seed_tasks), *earlier])
        return self._pool

    # -- results -----------------------------------------------------------------------------

    def _summaries(self) -> list[dict[str, Any]]:
        return [summary for _, summary in self.state.state_items(NAMESPACE)]

    def instructions(self, before: int | None = None) -> list[dict[str, str]]:
        return [i for s in self._summaries() if before is None or s["round"] < before for i in s["instructions"]]

    def stalled(self, round_: int) -> bool:
        """The last PATIENCE rounds of self-instruct kept nothing new: the model repeats itself."""
        tried = [s for s in self._summaries() if s["round"] < round_ and s["self_instruct_calls"]][-PATIENCE:]
        return len(tried) == PATIENCE and not any(s["instructions"] for s in tried)

    def prompts_rows(self) -> list[dict[str, Any]]:
        """The stage's output: red-teaming questions, then self-instruct tasks (the prompt is the
        instruction, then its input after a blank line, as the reference prompts it), with sources."""
        rows = [q for s in self._summaries() for q in s.get("questions", [])]
        for s in self._summaries():
            for task in s["instructions"]:
                prompt = task["instruction"] + (f"\n\n{task['input']}" if task["input"] else "")
                rows.append({"prompt": prompt, "source": "self-instruct", "instruction": task["instruction"],
                             "input": task["input"], "round": s["round"]})
        return rows

    def left_out(self) -> list[str]:
        """Red-team types that got no topic, so no question (empty while red-teaming is not done)."""
        return [name for s in self._summaries() for name in s.get("left_out", [])]

    def dropped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self._summaries():
            total.update(s["dropped"])
        return dict(sorted(total.items()))

    def describe(self, summary: dict[str, Any]) -> str:
        parts = [f"round {summary['round']}:"]
        if "topics" in summary:
            added = sum(len(t) for t in summary["topics"].values())
            parts.append(f"{added} new topics for {len(summary['topics'])} types;")
        if "questions" in summary:
            parts.append(f"{len(summary['questions'])} red-teaming questions;")
            if summary["left_out"]:
                parts.append(f"types left out (no topic kept): {', '.join(summary['left_out'])};")
        parts.append(f"{len(summary['instructions'])} self-instruct tasks kept, "
                     f"{sum(summary['dropped'].values())} texts dropped, {summary['calls_failed']} calls failed")
        return " ".join(parts)


def _item(item_id: str, prompt: str, **extra: Any) -> Item:
    return Item(item_id, 0, ({"role": "user", "content": prompt},), extra)
