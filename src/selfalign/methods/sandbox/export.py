"""The Sandbox's data sets, from the turn records, in the formats `train` reads.

Stable Alignment groups `{"prompt": [messages], "responses": [...], "ratings": [...]}`, where a
rating is a 1-7 number a judge gave (a failed rating never becomes a number):

- imitation:   one group per question, pooling every answer to it (drafts and revisions of all
               agents in all rounds) with the observers' alignment ratings, as the reference does.
               Responses are ordered best first and, among equal ratings, revisions first:
               training takes the first of the best-rated responses as its target, so a tie
               between a draft and its revision teaches the revision (the later, socially
               improved answer). A question with fewer than two rated answers is no group.
- self-critic: per turn, question + draft -> each neighbour's critique (its reason, without the
               number), scored by that neighbour's rating.
- realignment: per turn, question + draft -> "CRITIQUE\\n\\nHere is the revised response:\\nREVISION"
               (the reference's format: the model learns to critique its own answer and then
               revise it), rated by the observer; kept only when the revision scored higher
               than the draft and above 4.

`mix_groups` keeps every imitation group and samples self-critic and realignment groups as
fractions of them (reference 5:1:1: one of each per five imitation groups), so a run with no
realignment examples still yields its imitation data. Preference pairs take the observer's
better-rated answer of draft and revision as chosen; SFT rows the better-rated answer (the
revision on a tie) when it scored above 4. Every row left out is counted with its reason.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from selfalign.methods.prompts import Prompts
from selfalign.methods.seeding import derive_seed
from selfalign.store.export import Exported, groups_row, preference_row, sft_row
from selfalign.store.inputs import Item

from .record import SandboxRecord

KINDS = ("imitation", "self_critic", "realignment")
ACCEPT_ABOVE = 4  # a realigned answer must score above this (and above its draft)
REFERENCE_MIX = (5, 1, 1)
REVISED_MARK = "Here is the revised response:"

Records = Iterable[tuple[Item, dict[str, Any]]]


def _records(records: Records) -> list[tuple[Item, SandboxRecord]]:
    out = [(item, SandboxRecord.model_validate(rec)) for item, rec in records]
    return sorted(out, key=lambda pair: (pair[1].round, pair[1].agent))


# --- imitation: every answer to a question, pooled ------------------------------------------


def imitation(records: list[SandboxRecord]) -> Exported:
    out = Exported()
    pools: dict[str, dict[str, tuple[int, int]]] = {}  # question -> answer -> (rating, revision first)
    for rec in records:
        pool = pools.setdefault(rec.question, {})
        for text, seen, is_revision in ((rec.draft, rec.observed_draft, 0), (rec.revision, rec.observed_revision, 1)):
            if not seen.ok:
                out.excluded["imitation: answers without an observer rating"] += 1
                continue
            old = pool.get(text)
            pool[text] = max(old, (seen.alignment, is_revision)) if old else (seen.alignment, is_revision)  # type: ignore[type-var, arg-type]
    for question, pool in pools.items():
        if len(pool) < 2:
            out.excluded["imitation: question with fewer than two rated answers"] += 1
            continue
        ranked = sorted(pool.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))  # best first, revisions first
        out.rows.append(_group([_user(question)], [t for t, _ in ranked], [r for _, (r, _) in ranked]))
    return out


# --- per turn: self-critic, realignment, preference, SFT -------------------------------------


def self_critic(rec: SandboxRecord) -> list[dict[str, Any]] | str:
    usable = [f for f in rec.feedback if f.ok]
    if not usable:
        return "self_critic: no usable neighbour rating"
    return [_group([_user(rec.critic_request)], [f.reason for f in usable], [f.rating for f in usable])]  # type: ignore[misc]


def realignment(rec: SandboxRecord) -> list[dict[str, Any]] | str:
    d, v = rec.observed_draft, rec.observed_revision
    if not (d.ok and v.ok):
        return "realignment: observer rating failed"
    if not v.alignment > d.alignment:  # type: ignore[operator]
        return "realignment: revision not rated higher than draft"
    if not v.alignment > ACCEPT_ABOVE:  # type: ignore[operator]
        return f"realignment: revision rated {ACCEPT_ABOVE} or lower"
    critique = " ".join(f.reason for f in rec.feedback if f.ok)  # type: ignore[misc]
    target = f"{critique}\n\n{REVISED_MARK}\n{rec.revision}"
    return [_group([_user(realign_request(rec))], [target], [v.alignment])]  # type: ignore[list-item]


def preference(rec: SandboxRecord, question: list[dict[str, str]]) -> list[dict[str, Any]] | str:
    d, v = rec.observed_draft, rec.observed_revision
    if not (d.ok and v.ok):
        return "preference: observer rating failed"
    if d.alignment == v.alignment or rec.draft == rec.revision:
        return "preference: draft and revision rated the same"
    chosen, rejected = (rec.revision, rec.draft) if v.alignment > d.alignment else (rec.draft, rec.revision)  # type: ignore[operator]
    return [preference_row(question, chosen=chosen, rejected=rejected)]


def sft(rec: SandboxRecord, question: list[dict[str, str]]) -> list[dict[str, Any]] | str:
    d, v = rec.observed_draft, rec.observed_revision
    rated = [(v.alignment, rec.revision)] if v.ok else []
    rated += [(d.alignment, rec.draft)] if d.ok else []
    if not rated:
        return "sft: observer rating failed"
    score, best = max(rated, key=lambda sa: sa[0])  # type: ignore[arg-type, return-value]  # the revision on a tie
    if not score > ACCEPT_ABOVE:  # type: ignore[operator]
        return f"sft: best answer rated {ACCEPT_ABOVE} or lower"
    return [sft_row(question, best)]


def realign_request(rec: SandboxRecord) -> str:
    """The realignment prompt; format-1 records predate it and get the shipped template's text."""
    if rec.realign_request:
        return rec.realign_request
    return Prompts(Path(__file__).parent / "prompts").render("realign", question=rec.question, draft=rec.draft)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _group(prompt: list[dict[str, str]], responses: list[str], ratings: list[int]) -> dict[str, Any]:
    if any(r is None or not 1 <= r <= 7 for r in ratings):  # never a placeholder in training scores
        raise ValueError(f"ratings must be numbers in 1..7, got {ratings}")
    return groups_row(prompt, responses, [float(r) for r in ratings])


def _per_turn(records: list[tuple[Item, SandboxRecord]], rows_of: Any, with_question: bool = False) -> Exported:
    out = Exported()
    for item, rec in records:
        rows = rows_of(rec, list(item.messages)) if with_question else rows_of(rec)
        if isinstance(rows, str):
            out.excluded[rows] += 1
        else:
            out.rows.extend(rows)
    return out


# --- the mix ---------------------------------------------------------------------------------


def parse_mix(text: str) -> tuple[int, int, int] | None:
    """'5:1:1' -> (5, 1, 1) (imitation : self-critic : realignment); 'all' -> None (no sampling)."""
    if text.strip().lower() == "all":
        return None
    try:
        parts = tuple(int(p) for p in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] < 1:
        raise ValueError(
            f"--mix {text}: expected three non-negative integers like 5:1:1 (imitation first, at least 1), or 'all'"
        )
    return parts  # type: ignore[return-value]


def mix_groups(
    by_kind: dict[str, list[dict[str, Any]]], ratio: tuple[int, int, int] | None, seed: int
) -> tuple[list[dict[str, Any]], dict[str, int], Counter]:
    """Every imitation group, and self-critic and realignment groups sampled (seeded) to their
    fraction of the imitation count; with ratio None every group is kept. Returns the rows, the
    count kept of each kind, and what the mix left out."""
    dropped: Counter = Counter()
    kept = {k: list(by_kind[k]) for k in KINDS}
    if ratio is not None:
        base = len(by_kind["imitation"]) / ratio[0]
        for k, w in zip(KINDS[1:], ratio[1:]):
            n = min(len(kept[k]), int(base * w + 1e-9))
            random.Random(derive_seed(seed, "mix", k)).shuffle(kept[k])
            if len(kept[k]) > n:
                dropped[f"{k}: left out by the mix {':'.join(map(str, ratio))}"] += len(kept[k]) - n
            kept[k] = kept[k][:n]
    rows = [row for k in KINDS for row in kept[k]]
    return rows, {k: len(kept[k]) for k in KINDS}, dropped


@dataclass
class RunExport:
    groups: list[dict[str, Any]]
    kept: dict[str, int]
    preference: list[dict[str, Any]]
    sft: list[dict[str, Any]]
    excluded: Counter


def by_kind(records: Records) -> tuple[dict[str, Exported], list[tuple[Item, SandboxRecord]]]:
    turns = _records(records)
    kinds = {
        "imitation": imitation([rec for _, rec in turns]),
        "self_critic": _per_turn(turns, self_critic),
        "realignment": _per_turn(turns, realignment),
    }
    return kinds, turns


def export_run(records: Records, ratio: tuple[int, int, int] | None, seed: int) -> RunExport:
    """Every done turn's data; groups mixed to `ratio`; exclusions counted by reason."""
    kinds, turns = by_kind(records)
    groups, kept, dropped = mix_groups({k: e.rows for k, e in kinds.items()}, ratio, seed)
    pref, tuned = _per_turn(turns, preference, True), _per_turn(turns, sft, True)
    excluded = sum((e.excluded for e in kinds.values()), Counter()) + pref.excluded + tuned.excluded + dropped
    return RunExport(groups, kept, pref.rows, tuned.rows, excluded)


def _groups(records: Records) -> Exported:
    """All three kinds, unmixed (`selfalign export RUN --format groups`)."""
    kinds, _ = by_kind(records)
    return Exported([row for k in KINDS for row in kinds[k].rows], sum((e.excluded for e in kinds.values()), Counter()))


EXPORTS = {
    "groups": _groups,
    "preference": lambda records: _per_turn(_records(records), preference, True),
    "sft": lambda records: _per_turn(_records(records), sft, True),
}
