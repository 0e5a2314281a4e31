"""Training data: read JSONL / Parquet / `datasets.save_to_disk` folders, validate every record
before training starts, and turn records into what each method trains on.

Formats are documented in `selfalign.train.records`. Which formats each method takes:

    sft     SFT conversations; preference (prompt + chosen); groups (prompt + best response)
    stable  groups; Sandbox records; preference (chosen rated rating_scale, rejected rated 1);
            SFT (a group of one response: plain SFT on the last assistant turn)
    dpo     preference; groups (best vs worst rated, groups with all ratings equal skipped)

Any bad record stops the run with its file, line (row for Parquet / dataset folders) and fix.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, read_rows
from selfalign.llm.types import MessageDicts

from .records import (
    GroupRecord,
    PreferenceRecord,
    Record,
    SandboxRecord,
    SFTRecord,
    detect_schema,
)

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
DATA_SUFFIXES = {".jsonl", ".json", ".parquet"}
FORMATS_HINT = (
    'expected one of: {"messages": [...]} (SFT); {"prompt", "chosen", "rejected"} (preference); '
    '{"prompt", "responses", "ratings"} (groups); {"query", "responses", "scores"} (Sandbox release)'
)


@dataclass(frozen=True)
class Located:
    """A validated record and where it came from ("file.jsonl:12" or "file.parquet row 12")."""

    where: str
    record: Record


@dataclass
class Group:
    """One Stable Alignment group: a prompt and its rated responses."""

    prompt: MessageDicts
    responses: list[str]
    ratings: list[float]


# ---------------------------------------------------------------------------------------------
# Reading


def iter_rows(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(location, raw row) for every row of a file or folder, read by the one reader of data
    files (`selfalign.formats.rows`); a broken JSON line yields an InputError in place of the row
    so that the caller can report all problems at once."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"training data not found: {p}")
    if p.is_dir() and not _is_dataset_folder(p):
        files = sorted(f for f in p.iterdir() if f.suffix in DATA_SUFFIXES)
        if not files:
            raise InputError(f"{p}: no .jsonl/.json/.parquet files and not a datasets.save_to_disk folder")
        for f in files:
            yield from iter_rows(f)
        return
    if p.is_file() and p.suffix.lower() not in DATA_SUFFIXES:
        raise InputError(f"{p}: unknown data file type; use .jsonl, .json (an array), .parquet or a datasets folder")
    for row in read_rows(p):
        value = InputError(row.value.problem) if isinstance(row.value, BrokenRow) else row.value
        yield row.where, value


def _is_dataset_folder(p: Path) -> bool:
    return any((p / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def split_weight(spec: str) -> tuple[str, float]:
    """'helpful.jsonl:0.5' -> ('helpful.jsonl', 0.5); a path without a weight weighs 1."""
    path, sep, weight = spec.rpartition(":")
    if not sep or not path or Path(spec).exists():
        return spec, 1.0
    try:
        value = float(weight)
    except ValueError:
        return spec, 1.0  # a colon that is part of the path
    if not (0 < value < float("inf")):
        raise InputError(f"--data {spec}: the weight after ':' must be a positive number, like helpful.jsonl:0.5")
    return path, value


def weigh(records: list[Located], weight: float, seed: int) -> list[Located]:
    """`weight` times the records: whole copies, then a seeded sample for the fraction (0.5 keeps
    half of them, 2 repeats them twice)."""
    whole, fraction = int(weight), weight - int(weight)
    sample = random.Random(seed).sample(records, round(fraction * len(records)))
    return records * whole + sample


def load_records(paths: list[str] | str, *, rating_scale: float = 7.0, seed: int = 0) -> list[Located]:
    """Read and validate every record of every path (`PATH` or `PATH:WEIGHT`, see `weigh`).
    Raises InputError listing the first bad records (file, line, what is wrong and how to fix
    it) before anything is trained."""
    if isinstance(paths, str):
        paths = [paths]
    records: list[Located] = []
    errors: list[str] = []
    n_errors = 0
    context = {"rating_scale": rating_scale}
    for n, spec in enumerate(paths):
        path, weight = split_weight(spec)
        of_path: list[Located] = []
        for where, row in iter_rows(path):
            problem: str | None = None
            if isinstance(row, InputError):
                problem = str(row)
            elif not isinstance(row, dict):
                problem = f"{where}: expected a JSON object, got {type(row).__name__}"
            else:
                schema = detect_schema(row)
                if schema is None:
                    problem = f"{where}: unknown record format (keys {sorted(row)}); {FORMATS_HINT}"
                else:
                    try:
                        rec: BaseModel = schema.model_validate(row, context=context)
                    except ValidationError as exc:
                        problem = f"{where}: bad {schema.__name__.removesuffix('Record')} record: {_explain(exc)}"
                    else:
                        if isinstance(rec, SandboxRecord):
                            rec = rec.as_group()
                        of_path.append(Located(where, rec))  # type: ignore[arg-type]
            if problem is not None:
                n_errors += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(problem)
        records += of_path if weight == 1.0 else weigh(of_path, weight, seed + n)
    if n_errors:
        more = f"\n... and {n_errors - len(errors)} more" if n_errors > len(errors) else ""
        raise InputError(f"{n_errors} bad training record(s); nothing was trained:\n" + "\n".join(errors) + more)
    if not records:
        raise InputError(f"no training records in {', '.join(map(str, paths))}")
    return records


# ---------------------------------------------------------------------------------------------
# Records -> what each method trains on


def _last_assistant(messages: MessageDicts) -> int:
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant")


def _best(ratings: list[float]) -> int:
    return max(range(len(ratings)), key=lambda i: (ratings[i], -i))  # first of the best


def to_sft(items: list[Located]) -> list[MessageDicts]:
    """Conversations for SFT: SFT as is, preference as prompt + chosen, groups as prompt + best."""
    out: list[MessageDicts] = []
    for item in items:
        rec = item.record
        if isinstance(rec, SFTRecord):
            out.append(rec.conversation())
        elif isinstance(rec, PreferenceRecord):
            prompt, chosen, _ = rec.split()
            out.append(prompt + chosen)
        else:
            b = _best(rec.ratings)
            out.append(rec.prompt_messages() + [{"role": "assistant", "content": rec.responses[b]}])
    return out


def to_groups(items: list[Located], *, rating_scale: float = 7.0, max_responses: int = 3) -> list[Group]:
    """Groups for Stable Alignment. Preference: chosen rated `rating_scale`, rejected 1. SFT: the
    last assistant turn is a group of one (the loss is then plain SFT)."""
    out: list[Group] = []
    for item in items:
        rec = item.record
        if isinstance(rec, GroupRecord):
            keep = select_responses(rec.ratings, max_responses)
            out.append(Group(rec.prompt_messages(), [rec.responses[i] for i in keep], [rec.ratings[i] for i in keep]))
        elif isinstance(rec, PreferenceRecord):
            prompt, chosen, rejected = rec.split()
            if len(chosen) != 1 or len(rejected) != 1 or chosen[0]["role"] != "assistant":
                raise InputError(
                    f"{item.where}: for --method stable, 'chosen' and 'rejected' must each be one "
                    "assistant message (or a string)"
                )
            group = Group(prompt, [chosen[0]["content"], rejected[0]["content"]], [rating_scale, 1.0])
            out.append(group if max_responses >= 2 else Group(prompt, group.responses[:1], group.ratings[:1]))
        else:
            msgs = rec.conversation()
            last = _last_assistant(msgs)
            out.append(Group(msgs[:last], [msgs[last]["content"]], [rating_scale]))
    return out


def to_pairs(items: list[Located]) -> list[dict[str, MessageDicts]]:
    """Conversational preference examples for TRL's DPOTrainer. Groups give (best, worst);
    a group whose ratings are all equal says nothing about preference and is skipped."""
    out: list[dict[str, MessageDicts]] = []
    skipped = 0
    for item in items:
        rec = item.record
        if isinstance(rec, PreferenceRecord):
            prompt, chosen, rejected = rec.split()
        elif isinstance(rec, GroupRecord):
            b = _best(rec.ratings)
            w = min(range(len(rec.ratings)), key=lambda i: (rec.ratings[i], i))
            if rec.ratings[b] == rec.ratings[w]:
                skipped += 1
                continue
            prompt = rec.prompt_messages()
            chosen = [{"role": "assistant", "content": rec.responses[b]}]
            rejected = [{"role": "assistant", "content": rec.responses[w]}]
        else:
            raise InputError(
                f"{item.where}: --method dpo needs preference pairs ({{\"prompt\", \"chosen\", \"rejected\"}}) "
                "or rated groups; this is an SFT record. Use --method sft for it."
            )
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if skipped:
        log.warning("skipped %d group(s) whose responses all have the same rating", skipped)
    if not out:
        raise InputError("no preference pairs in the data (every group had equal ratings)")
    return out


def select_responses(ratings: list[float], k: int) -> list[int]:
    """Indices (in original order) of at most `k` responses: the best-rated one and an even
    spread over the rest by rating down to the worst, so the margin term sees the full range."""
    n = len(ratings)
    if n <= k:
        return list(range(n))
    order = sorted(range(n), key=lambda i: (-ratings[i], i))  # best first; ties keep file order
    if k == 1:
        return [order[0]]
    picks = {order[round(j * (n - 1) / (k - 1))] for j in range(k)}
    return sorted(picks)


# ---------------------------------------------------------------------------------------------
# Tokenisation with the model's chat template: loss only on the assistant's tokens


def _render(tokenizer: Any, messages: MessageDicts, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def tokenize_conversation(
    tokenizer: Any, messages: MessageDicts, *, max_length: int, only_last: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids of `messages` under the chat template, and a mask that is 1 on the assistant's
    tokens (all assistant turns, or only the last one when `only_last`).

    Works with any chat template, with or without `{% generation %}` markers: the text of
    messages[:i] with the generation prompt is where assistant turn i starts, the text of
    messages[:i+1] is where it ends; segments are tokenised one after the other. This needs a
    prefix-preserving template (rendering a conversation extends the rendering of its start),
    which is checked. Truncated to `max_length` tokens from the end.
    """
    full = _render(tokenizer, messages, False)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if only_last:
        turns = turns[-1:]
    # Character boundaries: alternating (not trained, trained) segments.
    cuts: list[tuple[int, bool]] = []
    for i in turns:
        start = _render(tokenizer, messages[:i], True) if i > 0 else _render_prompt_only(tokenizer, messages[:i])
        end = _render(tokenizer, messages[: i + 1], False)
        if not (full.startswith(end) and end.startswith(start)):
            raise InputError(
                "the model's chat template is not prefix-preserving (rendering a conversation does not "
                "extend the rendering of its first messages), so the assistant tokens cannot be located; "
                "pass --chat-template FILE with a template that is"
            )
        cuts.append((len(start), False))
        cuts.append((len(end), True))
    cuts.append((len(full), False))
    ids: list[int] = []
    mask: list[int] = []
    pos = 0
    for cut, trained in cuts:
        if cut <= pos:
            continue
        piece = tokenizer(full[pos:cut], add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        mask.extend([int(trained)] * len(piece))
        pos = cut
    return ids[:max_length], mask[:max_length]


def _render_prompt_only(tokenizer: Any, messages: MessageDicts) -> str:
    # An assistant message first in the conversation: its prefix is just the generation prompt
    # (some templates add a default system prompt here, which rendering [] would miss).
    try:
        return _render(tokenizer, messages, True)
    except Exception:  # a template may refuse an empty conversation
        return ""


def tokenize_sft(tokenizer: Any, conversations: list[MessageDicts], *, max_length: int) -> list[dict[str, list[int]]]:
    """Pre-tokenised SFT rows with `assistant_masks` (TRL's SFTTrainer builds labels from it)."""
    rows = []
    dropped = 0
    for msgs in conversations:
        ids, mask = tokenize_conversation(tokenizer, msgs, max_length=max_length)
        if not any(mask):
            dropped += 1  # the answer was cut off entirely by max_length: nothing to learn
            continue
        rows.append({"input_ids": ids, "assistant_masks": mask})
    _report_dropped(dropped, len(conversations), "conversation(s)", max_length)
    return rows


def tokenize_groups(tokenizer: Any, groups: list[Group], *, max_length: int) -> list[dict[str, Any]]:
    """Pre-tokenised Stable Alignment rows: per response, input ids and labels (-100 on prompt)."""
    rows = []
    dropped = 0
    for g in groups:
        ids_k, labels_k, ratings_k = [], [], []
        for text, rating in zip(g.responses, g.ratings, strict=True):
            ids, mask = tokenize_conversation(
                tokenizer, g.prompt + [{"role": "assistant", "content": text}], max_length=max_length, only_last=True
            )
            if not any(mask):
                continue  # response cut off by max_length: an empty NLL would look perfect
            ids_k.append(ids)
            labels_k.append([t if m else -100 for t, m in zip(ids, mask, strict=True)])
            ratings_k.append(rating)
        if not ids_k:
            dropped += 1
            continue
        rows.append({"input_ids": ids_k, "labels": labels_k, "ratings": ratings_k})
    _report_dropped(dropped, len(groups), "group(s)", max_length)
    return rows


def _report_dropped(dropped: int, total: int, what: str, max_length: int) -> None:
    if dropped == total:
        raise InputError(f"every one of {total} {what} is longer than --max-length {max_length} before the "
                         "answer starts; raise --max-length")
    if dropped:
        log.warning("dropped %d of %d %s whose answer starts after --max-length %d", dropped, total, what, max_length)
