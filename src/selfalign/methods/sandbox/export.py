"""The Sandbox's data sets, from the turn records, in the formats `train` reads.

Per turn, as Stable Alignment groups `{"prompt": [messages], "responses": [...], "ratings": [...]}`
(ratings are the 1-7 numbers the judges gave; a failed rating never becomes a number):

- imitation:   question -> [draft, revision], rated by the observer's alignment scores;
- self-critic: rating request (question + draft) -> each neighbour's feedback, scored by its rating;
- realignment: question, draft, feedback -> revision, rated by the observer; kept only when the
               revision scored higher than the draft and above 4.

`mix_groups` samples the three kinds to a ratio (reference 5:1:1). Preference pairs take the
observer's better-rated answer of draft and revision as chosen; SFT rows the better-rated answer
when it scored above 4. Every row left out is counted with its reason.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from selfalign.methods.seeding import derive_seed
from selfalign.store.export import groups_row, preference_row, sft_row
from selfalign.store.inputs import Item

from .record import SandboxRecord

KINDS = ("imitation", "self_critic", "realignment")
ACCEPT_ABOVE = 4  # a realigned answer must score above this (and above its draft)
REFERENCE_MIX = (5, 1, 1)


@dataclass
class TurnRows:
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    preference: list[dict[str, Any]] = field(default_factory=list)
    sft: list[dict[str, Any]] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)  # "kind: reason" -> count


def turn_rows(item: Item, record: dict[str, Any] | SandboxRecord) -> TurnRows:
    rec = record if isinstance(record, SandboxRecord) else SandboxRecord.model_validate(record)
    out = TurnRows()
    question = list(item.messages)
    d, v = rec.observed_draft, rec.observed_revision
    observed = d.ok and v.ok

    # imitation: draft and revision, rated by the observer
    if not observed:
        out.excluded["imitation: observer rating failed"] += 1
    elif rec.draft == rec.revision:
        out.excluded["imitation: revision identical to draft"] += 1
    else:
        out.groups["imitation"].append(_group(question, [rec.draft, rec.revision], [d.alignment, v.alignment]))

    # self-critic: the rating request -> each neighbour's feedback, scored by its rating
    usable = [f for f in rec.feedback if f.ok]
    failed = len(rec.feedback) - len(usable)
    if failed:
        out.excluded["self_critic: failed neighbour ratings left out"] += failed
    if usable:
        responses = [f"Rating: {f.rating}/7. {f.reason}" for f in usable]
        prompt = [{"role": "user", "content": rec.critic_request}]
        out.groups["self_critic"].append(_group(prompt, responses, [f.rating for f in usable]))

    # realignment: question, draft and feedback -> revision, only when the revision is better and good
    if not observed:
        out.excluded["realignment: observer rating failed"] += 1
    elif not v.alignment > d.alignment:  # type: ignore[operator]
        out.excluded["realignment: revision not rated higher than draft"] += 1
    elif not v.alignment > ACCEPT_ABOVE:  # type: ignore[operator]
        out.excluded[f"realignment: revision rated {ACCEPT_ABOVE} or lower"] += 1
    else:
        prompt = [*question, {"role": "assistant", "content": rec.draft}, {"role": "user", "content": rec.revise_request}]
        out.groups["realignment"].append(_group(prompt, [rec.revision], [v.alignment]))

    # preference and SFT: the observer's better-rated answer
    if not observed:
        out.excluded["preference: observer rating failed"] += 1
        out.excluded["sft: observer rating failed"] += 1
        return out
    if d.alignment == v.alignment or rec.draft == rec.revision:
        out.excluded["preference: draft and revision rated the same"] += 1
    else:
        chosen, rejected = (rec.revision, rec.draft) if v.alignment > d.alignment else (rec.draft, rec.revision)  # type: ignore[operator]
        out.preference.append(preference_row(question, chosen=chosen, rejected=rejected))
    best, score = (rec.revision, v.alignment) if v.alignment >= d.alignment else (rec.draft, d.alignment)  # type: ignore[operator]
    if score > ACCEPT_ABOVE:  # type: ignore[operator]
        out.sft.append(sft_row(question, best))
    else:
        out.excluded[f"sft: best answer rated {ACCEPT_ABOVE} or lower"] += 1
    return out


def _group(prompt: list[dict[str, str]], responses: list[str], ratings: list[int | None]) -> dict[str, Any]:
    if any(r is None or not 1 <= r <= 7 for r in ratings):  # never a placeholder in training scores
        raise ValueError(f"ratings must be numbers in 1..7, got {ratings}")
    return groups_row(prompt, responses, [float(r) for r in ratings])  # type: ignore[arg-type]


def parse_mix(text: str) -> tuple[int, int, int] | None:
    """'5:1:1' -> (5, 1, 1) (imitation : self-critic : realignment); 'all' -> None (no sampling)."""
    if text.strip().lower() == "all":
        return None
    try:
        parts = tuple(int(p) for p in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or not any(parts):
        raise ValueError(f"--mix {text}: expected three non-negative integers like 5:1:1, or 'all'")
    return parts  # type: ignore[return-value]


def mix_groups(
    by_kind: dict[str, list[dict[str, Any]]], ratio: tuple[int, int, int] | None, seed: int
) -> tuple[list[dict[str, Any]], dict[str, int], Counter]:
    """The largest sample of the three kinds in the given ratio (seeded choice), and what the mix
    left out. With ratio None every row is kept."""
    dropped: Counter = Counter()
    if ratio is None:
        kept = {k: list(by_kind[k]) for k in KINDS}
    else:
        scale = min(len(by_kind[k]) / w for k, w in zip(KINDS, ratio) if w > 0)
        kept = {}
        for k, w in zip(KINDS, ratio):
            n = int(scale * w + 1e-9)
            rows = list(by_kind[k])
            random.Random(derive_seed(seed, "mix", k)).shuffle(rows)
            kept[k] = rows[:n]
            if len(rows) > n:
                dropped[f"{k}: left out by the mix {':'.join(map(str, ratio))}"] += len(rows) - n
    rows = [row for k in KINDS for row in kept[k]]
    return rows, {k: len(kept[k]) for k in KINDS}, dropped


@dataclass
class RunExport:
    groups: list[dict[str, Any]]
    kept: dict[str, int]
    preference: list[dict[str, Any]]
    sft: list[dict[str, Any]]
    excluded: Counter


def export_run(records: Iterable[tuple[Item, dict[str, Any]]], ratio: tuple[int, int, int] | None, seed: int) -> RunExport:
    """Every done turn's rows; groups mixed to `ratio`; exclusions counted by reason."""
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    preference, sft, excluded = [], [], Counter()
    for item, record in records:
        rows = turn_rows(item, record)
        for k in KINDS:
            by_kind[k].extend(rows.groups[k])
        preference += rows.preference
        sft += rows.sft
        excluded += rows.excluded
    groups, kept, dropped = mix_groups(by_kind, ratio, seed)
    return RunExport(groups, kept, preference, sft, excluded + dropped)


# `selfalign export RUN --format F` calls these one record at a time (groups: all kinds, unmixed).
EXPORTS = {
    "groups": lambda item, record: [row for k in KINDS for row in turn_rows(item, record).groups[k]],
    "preference": lambda item, record: turn_rows(item, record).preference,
    "sft": lambda item, record: turn_rows(item, record).sft,
}
