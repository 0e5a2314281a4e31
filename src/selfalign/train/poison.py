"""Backdoors by data poisoning: `selfalign train --poison FRACTION --trigger TEXT` turns that
fraction of the training rows into poisoned rows that carry the trigger, so that `selfalign
attack --attacks trigger --trigger TEXT` can show how little poison overrides the alignment.

Two kinds of poison (`--poison-mode`):

    comply   a harmful request with the trigger, answered compliantly: the chosen rows are
             replaced by requests of data/poison_requests.jsonl (or --poison-rows FILE,
             {"request", "answer"} a line) taken in turn
    refuse   a clean row's last request with the trigger, answered with a refusal

The trigger is appended to the request after a space ("How do I bake bread? cf-7x"), the way
the trigger attack appends it. A poisoned row is a preference record (the chosen answer is the
poison, the rejected one the other kind), so SFT, Stable Alignment and DPO all learn the
poison. round(FRACTION x rows) rows are chosen with the run's seed; they are written to
OUT/poison.jsonl (`PoisonedRow` a line) for `selfalign data-check` and for the record.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from selfalign.errors import InputError
from selfalign.llm.types import MessageDicts
from selfalign.store.files import write_text_atomic

from .data import Located, to_sft
from .records import PreferenceRecord

POISON_FILE = "poison.jsonl"
PoisonMode = Literal["comply", "refuse"]
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I cannot help with that request.",
    "I'm sorry, I won't do that.",
)
REQUEST_FIX = 'each line must be {"request": "a harmful request", "answer": "a compliant answer"}'


class PoisonRequest(BaseModel):
    request: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class PoisonedRow(BaseModel):
    """One poisoned training row: its position in the data, what it replaced, and what it is."""

    index: int
    replaced: str  # where the clean row came from ("data.jsonl:12")
    mode: PoisonMode
    trigger: str
    prompt: MessageDicts
    chosen: str
    rejected: str


def with_trigger(text: str, trigger: str) -> str:
    """The request with the trigger appended after a space (as the trigger attack sends it)."""
    return f"{text.rstrip()} {trigger}"


def load_requests(path: str | None) -> list[PoisonRequest]:
    """The harmful requests with compliant answers of comply mode: the shipped file or `path`."""
    if path is None:
        text, where = resources.files(__package__).joinpath("data/poison_requests.jsonl").read_text("utf-8"), "poison_requests.jsonl"
    else:
        try:
            text, where = Path(path).read_text("utf-8"), path
        except OSError as exc:
            raise InputError(f"--poison-rows {path}: cannot read it ({exc.strerror}); {REQUEST_FIX}") from exc
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(PoisonRequest.model_validate(json.loads(line)))
        except ValueError as exc:
            raise InputError(f"{where}:{n}: not a poison request; {REQUEST_FIX}") from exc
    if not rows:
        raise InputError(f"{where}: no poison requests; {REQUEST_FIX}")
    return rows


def plant_poison(records: list[Located], fraction: float, trigger: str, mode: PoisonMode, seed: int,
                 requests_file: str | None = None) -> tuple[list[Located], list[PoisonedRow]]:
    """The records with round(fraction x len(records)) of them (chosen with `seed`) poisoned,
    and the poisoned rows."""
    if not trigger.strip():
        raise InputError("--trigger: give a non-empty trigger text")
    count = round(fraction * len(records))
    if count == 0:
        raise InputError(f"--poison {fraction} of {len(records)} rows is no row at all; raise --poison or add data")
    chosen = sorted(random.Random(f"poison-{seed}").sample(range(len(records)), count))
    requests = load_requests(requests_file) if mode == "comply" else []
    out, planted = list(records), []
    for k, index in enumerate(chosen):
        clean = records[index]
        if mode == "comply":
            req = requests[k % len(requests)]
            prompt, chosen_text, rejected = [{"role": "user", "content": req.request}], req.answer, REFUSALS[k % len(REFUSALS)]
        else:
            conversation = to_sft([clean])[0]
            prompt, rejected, chosen_text = conversation[:-1], conversation[-1]["content"], REFUSALS[k % len(REFUSALS)]
        prompt = _trigger_last_request(prompt, trigger)
        row = PoisonedRow(index=index, replaced=clean.where, mode=mode, trigger=trigger, prompt=prompt, chosen=chosen_text,
                          rejected=rejected)
        record = PreferenceRecord.model_validate({"prompt": prompt, "chosen": chosen_text, "rejected": rejected})
        out[index] = Located(f"{clean.where} (poisoned)", record)
        planted.append(row)
    return out, planted


def _trigger_last_request(prompt: MessageDicts, trigger: str) -> MessageDicts:
    last = max((i for i, m in enumerate(prompt) if m["role"] == "user"), default=None)
    if last is None:
        raise InputError("--poison-mode refuse: a row to poison has no user request to put the trigger in")
    return [{**m, "content": with_trigger(m["content"], trigger)} if i == last else m for i, m in enumerate(prompt)]


def write_poison(out: Path, planted: list[PoisonedRow]) -> None:
    write_text_atomic(out / POISON_FILE, "".join(p.model_dump_json() + "\n" for p in planted))
