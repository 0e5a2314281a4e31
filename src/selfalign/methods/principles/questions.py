"""Red-teaming questions from mixed-type hints, as the reference writes them
(training/step1_topic_guided_red_teaming_self_instruct/generate_tgrt_question.py): each call
lists `examples` seed hints and then the new ones, "N. type: ..., topic: ...", shows the seed
hints answered ("..., instruction: a question"), and the model goes on with line N+1. A line
that names a new hint's topic answers that hint (a bare question, the hint of its number): one
question a hint.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .files import RedTeamType
from .filters import normalise, numbered_lines

_LABELLED = re.compile(r"^(?:type\s*:\s*(?P<type>.*?),\s*)?(?:topic\s*:\s*(?P<topic>.*?),\s*)?instruction\s*:\s*(?P<question>.*)$",
                       re.IGNORECASE)


@dataclass(frozen=True)
class Hint:
    type_index: int
    type: str  # the type's description, "questions that require ..."
    topic: str
    question: str = ""  # a seed hint's question


def red_team_hints(types: list[RedTeamType], topics: dict[int, list[str]], seed: int) -> list[Hint]:
    """Every (type, topic) pair, shuffled so that each call mixes types (as the reference does)."""
    hints = [Hint(t, types[t].description, topic) for t, found in sorted(topics.items()) for topic in found]
    random.Random(seed).shuffle(hints)
    return hints


def seed_examples(types: list[RedTeamType], n: int, seed: int) -> list[Hint]:
    """`n` seed questions drawn from all types (a seed without a topic has its type's name)."""
    seeds = [Hint(t, kind.description, s.topic or kind.name, s.question) for t, kind in enumerate(types) for s in kind.seeds]
    return random.Random(seed).sample(seeds, min(n, len(seeds)))


def parse_questions(
    records: list[dict[str, Any]], types: list[RedTeamType], per_type: int, dropped: Counter[str],
) -> list[dict[str, Any]]:
    """The questions that answer the records' hints, in record and line order; every other line
    counted in `dropped` by reason."""
    kept: list[dict[str, Any]] = []
    seen = {normalise(s.question) for kind in types for s in kind.seeds}
    per: Counter[int] = Counter()
    for record in records:
        hints, first_new = record["hints"], record["examples"] + 1
        lines = numbered_lines(record["text"], first=None)
        if record.get("finish_reason") == "length" and lines:
            lines = lines[:-1]  # cut at max_tokens: the last line is likely cut too
            dropped["red-team: question cut off at max tokens"] += 1
        answered: set[int] = set()
        for number, line in lines:
            hint_at, question, problem = _answer(line, number - first_new, hints, answered)
            if problem is None and normalise(question) in seen:
                problem = "question duplicate"
            elif problem is None and per[hints[hint_at][0]] >= per_type:
                problem = "question beyond --per-type"
            if problem:
                dropped[f"red-team: {problem}"] += 1
                continue
            type_index, topic = hints[hint_at]
            answered.add(hint_at)
            seen.add(normalise(question))
            per[type_index] += 1
            kept.append({"prompt": question, "source": "red-team", "type": types[type_index].name, "topic": topic})
    return kept


def _answer(line: str, at: int, hints: list[Any], answered: set[int]) -> tuple[int, str, str | None]:
    """(hint index, question, problem) of a line numbered as hint `at` (an index into the new
    hints; negative: an example's). A line that names its topic answers the new hint of that
    topic, whatever its number (a small model often numbers them wrong); a bare question answers
    the hint of its number."""
    match = _LABELLED.match(line.strip())
    if match:
        named = (match.group("topic") or "").strip().lower()
        topics = [str(hint[1]).lower() for hint in hints]
        if not named:
            return at, "", "question names no topic"
        if named not in topics:
            return at, "", "line repeats an example's hint" if at < 0 else "question about another topic than its hints"
        at = topics.index(named)
        question = match.group("question")
    elif re.match(r"^\s*(?:type|topic)\s*:", line, re.IGNORECASE):
        return at, "", "hint repeated without a question"
    elif at < 0:
        return at, "", "line repeats an example's hint"
    elif at >= len(hints):
        return at, "", "question does not answer a hint"
    else:
        question = line
    if at in answered:
        return at, "", "hint answered twice"
    question = question.strip().strip('"').strip()
    return (at, question, None) if question else (at, "", "question empty")
