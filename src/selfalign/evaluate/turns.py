"""MT-Bench's two turns: the reference answers its math, reasoning and coding questions are
judged against (FastChat's reference_answer/gpt-4.jsonl), and one scoring item per answered turn.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from selfalign.errors import InputError, UserError
from selfalign.formats.rows import BrokenRow, read_rows
from selfalign.store.inputs import Item

from .presets import mt_bench


def turn_items(item: Item, candidate: dict[str, Any], baseline: dict[str, Any] | None) -> list[Item]:
    """One scoring item per answered turn of a multi-turn question (`ID#turnN`), with the
    questions, the answers (or both models' answers: `candidate` and `baseline` are their answer
    records) and the reference answers."""
    questions = item.extra.get("turns") or []
    mine = candidate.get("turns") or [candidate["answer"]]
    other = None if baseline is None else (baseline.get("turns") or [baseline["answer"]])
    n = min(len(questions), len(mine), len(other) if other is not None else len(mine))
    answers = {"answer_turns": mine} if other is None else {"candidate_turns": mine, "baseline_turns": other}
    return [replace(item, id=f"{item.id}#turn{t}", extra={**item.extra, **answers, "turn": t}) for t in range(1, n + 1)]


def add_references(items: list[Item], path: str | None) -> list[Item]:
    """MT-Bench's reference answers on the questions of the categories judged against them; a
    missing one stops here, before any call."""
    need = set(mt_bench()["need_ref_cats"])
    wanted = [i for i in items if i.extra.get("turns") and set(i.extra.get("categories") or []) & need]
    if not wanted:
        return items
    if path is None:
        raise UserError("--scorers mt-bench: math, reasoning and coding questions are judged against reference answers; "
                        "give --reference FILE (FastChat's data/mt_bench/reference_answer/gpt-4.jsonl)")
    refs = load_references(path)
    missing = [i.extra.get("question_id") for i in wanted if i.extra.get("question_id") not in refs]
    if missing:
        raise UserError(f"{path}: no reference answer for question_id {missing[0]} (and {len(missing) - 1} more)")
    return [replace(i, extra={**i.extra, "reference": refs[i.extra["question_id"]]}) if i in wanted else i for i in items]


def load_references(path: str) -> dict[Any, list[str]]:
    """FastChat's reference answers: rows {"question_id", "choices": [{"turns": [...]}]}."""
    refs = {}
    for row in read_rows(path, 'expected {"question_id": ..., "choices": [{"turns": ["...", "..."]}]}'):
        value = row.value
        try:
            assert not isinstance(value, BrokenRow) and isinstance(value, dict)
            turns = value["choices"][0]["turns"]
            assert isinstance(turns, list) and all(isinstance(t, str) for t in turns)
        except (AssertionError, KeyError, IndexError, TypeError):
            raise InputError(f'{row.where}: not a reference answer; expected {{"question_id": ..., "choices": [{{"turns": ["...", "..."]}}]}}') from None
        refs[value["question_id"]] = turns
    return refs
