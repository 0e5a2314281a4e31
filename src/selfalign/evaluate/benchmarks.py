"""Benchmarks from local files in their public formats (or a hub dataset name), as items.

Each benchmark is a reader of one row format: it says where the prompt is, whether its prompts
ask for something harmful (refusal is then the right answer) or are ordinary (refusal is then
over-refusal), and its categories. A row that does not fit stops everything with the file, the
line and the format expected, before any model call.

| name             | public file                                   | prompt                        | harmful |
| ---------------- | --------------------------------------------- | ----------------------------- | ------- |
| hh-harmless      | Anthropic HH-RLHF harmless-base `*.jsonl(.gz)` | first human turn of `chosen`  | yes     |
| pku-saferlhf     | PKU-SafeRLHF `*.jsonl` / parquet               | `prompt` (harm categories)     | yes     |
| advbench         | AdvBench `harmful_behaviors.csv`               | `goal` (`target` kept)         | yes     |
| harmfulqa        | HarmfulQA `data_for_hub.json`                  | `question` (`topic`)           | yes     |
| vicuna, mt-bench | FastChat `question.jsonl`                      | first of `turns` (`category`)  | no      |
| harmbench        | HarmBench `harmbench_behaviors_text_*.csv`     | `Behavior` (`ContextString` before it) | yes |
| jbb-harmful      | JailbreakBench `harmful-behaviors.csv`         | `Goal` (`Category`)            | yes     |
| jbb-benign       | JailbreakBench `benign-behaviors.csv`          | `Goal` (`Category`)            | no      |
| prompts          | any prompts file (see `store.inputs`)          | `prompt` or `messages`         | row's `harmful`, if any |

Some benchmarks are not answered but scored by log-likelihood, as lm-evaluation-harness scores
them: truthfulqa_mc (TruthfulQA MC1 and MC2) and hhh (BIG-bench HHH alignment, per subset) in
`likelihood.py`; crows-pairs, crows-pairs-french and bbq (stereotypes and bias) in `bias.py`;
ethics (the five ETHICS subsets) and toxigen in `ethics.py`. Two are continued (`--epochs` times) and
scored for toxicity by a classifier (see `toxicity.py`): realtoxicityprompts and bold.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from selfalign.errors import InputError, UserError
from selfalign.formats.rows import BrokenRow, Row, read_rows
from selfalign.store.inputs import Item, load_items

from .bias import BBQ_EXPECTED, CROWS_EXPECTED, bbq_aggregate, load_bbq, load_crows_pairs, load_crows_pairs_french
from .ethics import ETHICS_EXPECTED, TOXIGEN_EXPECTED, load_ethics, load_toxigen
from .likelihood import HHH_EXPECTED, TRUTHFULQA_EXPECTED, load_hhh, load_truthfulqa
from .stats import Estimate
from .toxicity import BOLD_EXPECTED, RTP_EXPECTED, load_bold, load_realtoxicityprompts

log = logging.getLogger(__name__)

#: The fields of a prompts-file row beside its prompt (`prompt` or `messages`): what labels it.
PROMPT_LABELS = ("harmful", "category")


@dataclass(frozen=True)
class Prompt:
    """What a benchmark row gives: the instruction, its categories, what else a scorer may use."""

    text: str
    categories: tuple[str, ...] = ()
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more a scorer reads (MT-Bench's turns, a context)


class RowError(ValueError):
    """A row does not fit its benchmark's format; the message says what is wrong."""


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"no text in {key!r} (fields: {sorted(row)})")
    return value


def _hh_harmless(row: dict[str, Any]) -> Prompt:
    chosen = _text(row, "chosen")
    _, human, rest = chosen.partition("Human:")
    first_turn = rest.split("\n\nAssistant:")[0].strip()
    if not human or not first_turn:
        raise RowError("'chosen' holds no '\\n\\nHuman: ...' turn")
    return Prompt(first_turn)


def _pku_saferlhf(row: dict[str, Any]) -> Prompt:
    categories: set[str] = set()
    for key in ("response_0_harm_category", "response_1_harm_category"):
        labels = row.get(key)
        if isinstance(labels, dict):
            categories.update(name for name, on in labels.items() if on)
    if isinstance(row.get("category"), str):
        categories.add(row["category"])
    return Prompt(_text(row, "prompt"), tuple(sorted(categories)))


def _advbench(row: dict[str, Any]) -> Prompt:
    return Prompt(_text(row, "goal"), target=row.get("target") or None)


def _harmfulqa(row: dict[str, Any]) -> Prompt:
    topic = row.get("topic")
    return Prompt(_text(row, "question"), (topic,) if isinstance(topic, str) and topic else ())


def _question_jsonl(row: dict[str, Any]) -> Prompt:
    turns = row.get("turns")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or not turns[0].strip():
        raise RowError(f"'turns' must be a non-empty list of strings (fields: {sorted(row)})")
    category = row.get("category")
    extra = {"turns": [t for t in turns if isinstance(t, str)], "question_id": row.get("question_id")}
    return Prompt(turns[0], (category,) if isinstance(category, str) and category else (), extra=extra)


def _harmbench(row: dict[str, Any]) -> Prompt:
    """A HarmBench behaviour; a contextual one is asked as HarmBench's direct request asks it:
    the context, a rule, then the behaviour."""
    behavior, context = _text(row, "Behavior"), row.get("ContextString") or None
    category = row.get("SemanticCategory")
    text = f"{context}\n\n---\n\n{behavior}" if context else behavior
    extra = {"behavior": behavior, "context": context, "tags": row.get("Tags") or ""}
    return Prompt(text, (category,) if category else (), extra=extra)


def _jailbreakbench(row: dict[str, Any]) -> Prompt:
    category = row.get("Category")
    return Prompt(_text(row, "Goal"), (category,) if category else (), target=row.get("Target") or None)


@dataclass(frozen=True)
class Benchmark:
    name: str
    harmful: bool | None  # None: the rows say (prompts files)
    expected: str  # the row format, for error messages
    read_row: Callable[[dict[str, Any]], Prompt] | None  # None: a prompts file (store.inputs)
    hub: str | None = None  # the public dataset, for --data NAME=HUB_ID
    #: Reads the whole file into items scored by log-likelihood instead of answered (likelihood.py).
    likelihood_loader: Callable[[str, int | None], list[Item]] | None = None
    #: Figures that are not means of per-question values (BBQ's bias scores): from the scored
    #: (item, record) pairs, the bootstrap's resamples and seed, {metric: estimate}.
    aggregate: Callable[[list[tuple[Item, dict[str, Any]]], int, int], dict[str, Estimate]] | None = None
    #: Reads the whole file into items to be continued and scored for toxicity (toxicity.py).
    items_loader: Callable[[str, int | None], list[Item]] | None = None

    @property
    def likelihood(self) -> bool:
        return self.likelihood_loader is not None


BENCHMARKS = {
    b.name: b
    for b in [
        Benchmark("hh-harmless", True, 'HH-RLHF rows {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}', _hh_harmless, "Anthropic/hh-rlhf"),
        Benchmark("pku-saferlhf", True, 'PKU-SafeRLHF rows {"prompt": ..., "response_0_harm_category": {...}, ...}', _pku_saferlhf, "PKU-Alignment/PKU-SafeRLHF"),
        Benchmark("advbench", True, "AdvBench harmful_behaviors.csv with columns goal,target", _advbench, "walledai/AdvBench"),
        Benchmark("harmfulqa", True, 'HarmfulQA rows {"topic": ..., "subtopic": ..., "question": ...}', _harmfulqa, "declare-lab/HarmfulQA"),
        Benchmark("vicuna", False, 'question.jsonl rows {"question_id": ..., "category": ..., "turns": ["..."]}', _question_jsonl),
        Benchmark("mt-bench", False, 'question.jsonl rows {"question_id": ..., "category": ..., "turns": ["...", "..."]}', _question_jsonl),
        Benchmark("harmbench", True, "HarmBench harmbench_behaviors_text_*.csv with columns Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID", _harmbench),
        Benchmark("jbb-harmful", True, "JailbreakBench harmful-behaviors.csv with columns Goal,Target,Behavior,Category", _jailbreakbench),
        Benchmark("jbb-benign", False, "JailbreakBench benign-behaviors.csv with columns Goal,Target,Behavior,Category", _jailbreakbench),
        Benchmark("prompts", None, "a prompts file (see --prompts of any generator)", None),
        Benchmark("truthfulqa_mc", None, TRUTHFULQA_EXPECTED, None, likelihood_loader=load_truthfulqa),
        Benchmark("hhh", None, HHH_EXPECTED, None, likelihood_loader=load_hhh),
        Benchmark("crows-pairs", None, CROWS_EXPECTED, None, "jannalu/crows_pairs_multilingual", likelihood_loader=load_crows_pairs),
        Benchmark("crows-pairs-french", None, CROWS_EXPECTED, None, "jannalu/crows_pairs_multilingual",
                  likelihood_loader=load_crows_pairs_french),
        Benchmark("bbq", None, BBQ_EXPECTED, None, "oskarvanderwal/bbq", likelihood_loader=load_bbq, aggregate=bbq_aggregate),
        Benchmark("ethics", None, ETHICS_EXPECTED, None, "EleutherAI/hendrycks_ethics", likelihood_loader=load_ethics),
        Benchmark("toxigen", None, TOXIGEN_EXPECTED, None, "skg/toxigen-data", likelihood_loader=load_toxigen),
        Benchmark("realtoxicityprompts", None, RTP_EXPECTED, None, "allenai/real-toxicity-prompts", items_loader=load_realtoxicityprompts),
        Benchmark("bold", None, BOLD_EXPECTED, None, items_loader=load_bold),
    ]
}


def parse_data_options(values: list[str]) -> dict[str, str]:
    """`--data NAME=FILE` options -> {name: file}."""
    data = {}
    for value in values:
        name, sep, source = value.partition("=")
        if not sep or not source:
            raise UserError(f"--data {value}: expected NAME=FILE, e.g. --data advbench=harmful_behaviors.csv")
        data[name.strip()] = source.strip()
    return data


def load_benchmarks(names: list[str], data: dict[str, str], limit: int | None = None) -> dict[str, list[Item]]:
    """Every named benchmark's items, all checked before anything runs."""
    unknown = [n for n in [*names, *data] if n not in BENCHMARKS]
    if unknown:
        raise UserError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    extra = sorted(set(data) - set(names))
    if extra:
        raise UserError(f"--data {extra[0]}=... names a benchmark not in --bench; add it to --bench")
    return {name: load_benchmark(BENCHMARKS[name], _source(BENCHMARKS[name], data), limit) for name in names}


def _source(bench: Benchmark, data: dict[str, str]) -> str:
    if bench.name in data:
        return data[bench.name]
    hint = f" (or the hub dataset {bench.hub}, with network)" if bench.hub else ""
    raise UserError(f"--bench {bench.name} needs its file: --data {bench.name}=FILE{hint}; format: {bench.expected}")


def load_benchmark(bench: Benchmark, source: str, limit: int | None = None) -> list[Item]:
    """The items of one benchmark file. Item ids are `NAME/000012` (the row's position)."""
    if bench.items_loader is not None:
        return bench.items_loader(source, limit)
    if bench.likelihood_loader is not None:
        return bench.likelihood_loader(source, limit)
    if bench.read_row is None:
        items = load_items(source, limit=limit)
        _warn_unknown_fields(bench.name, source, items)
        return [_labelled_prompt_item(bench.name, source, item) for item in items]
    rows = _hub_rows(source) if _is_hub_name(source) else read_rows(source, f"expected {bench.expected}")
    items = []
    for n, row in enumerate(rows[:limit] if limit else rows):
        if isinstance(row.value, BrokenRow):
            raise InputError(row.value.problem)
        try:
            if not isinstance(row.value, dict):
                raise RowError(f"expected an object, got {type(row.value).__name__}")
            prompt = bench.read_row(row.value)
        except RowError as exc:
            raise InputError(f"{row.where}: not a {bench.name} row: {exc}; expected {bench.expected}") from exc
        items.append(_item(bench.name, n, ({"role": "user", "content": prompt.text},), bench.harmful, prompt))
    if not items:
        raise InputError(f"{source}: no rows; expected {bench.expected}")
    return items


def _is_hub_name(source: str) -> bool:
    return not Path(source).exists() and source.count("/") == 1 and not source.startswith((".", "/")) and not Path(source).suffix


def _hub_rows(name: str) -> list[Row]:
    """A hub dataset's test split (or its train split), with network or from the datasets cache."""
    from selfalign.llm.hub import load_hub_dataset

    try:
        data = load_hub_dataset(name)
    except Exception as exc:  # datasets raises many kinds: no network, no such dataset, gated
        raise InputError(f"{name}: could not load this hub dataset ({exc}); check the name and network, or give a local file") from exc
    split = next((s for s in ("test", "train") if s in data), next(iter(data)))
    return [Row(f"{name} {split} row {i}", row) for i, row in enumerate(data[split], 1)]


def _warn_unknown_fields(name: str, source: str, items: list[Item]) -> None:
    """One warning for the fields no row of a prompts file should have (a misspelt label would
    otherwise leave every row unlabelled, silently), with the known field each may mean."""
    unknown = sorted({key for item in items for key in item.extra} - set(PROMPT_LABELS))
    if not unknown:
        return
    named = ", ".join(
        repr(key) + "".join(f" (did you mean {m!r}?)" for m in difflib.get_close_matches(key, PROMPT_LABELS, 1, 0.6))
        for key in unknown
    )
    log.warning("%s: field %s unknown to --bench %s, ignored; a row has prompt (or messages), and may have "
                "harmful (true or false) and category", source, named, name)


def _labelled_prompt_item(name: str, source: str, item: Item) -> Item:
    """A prompts-file item; its optional `harmful` (true/false) and `category` fields label it."""
    harmful = item.extra.get("harmful")
    if harmful is not None and not isinstance(harmful, bool):
        raise InputError(f"{source}: item {item.idx + 1}: 'harmful' must be true or false, got {harmful!r}")
    category = item.extra.get("category")
    categories = (category,) if isinstance(category, str) and category else ()
    return _item(name, item.idx, item.messages, harmful, Prompt(item.prompt, categories))


def _item(bench: str, n: int, messages: tuple[dict[str, str], ...], harmful: bool | None, prompt: Prompt) -> Item:
    extra: dict[str, Any] = {"bench": bench, "harmful": harmful, "categories": list(prompt.categories)}
    if prompt.target:
        extra["target"] = prompt.target
    extra.update(prompt.extra)
    return Item(id=f"{bench}/{n:06d}", idx=n, messages=messages, extra=extra)

