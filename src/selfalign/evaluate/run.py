"""`run_eval`: answers, then scores, then figures.

    DIR/answers/<model>-<hash>/run.sqlite          one run per model and generation setting
    DIR/scores/<scorer>-<hash>/<model>[-vs-<baseline>]/run.sqlite
                                                   one run per scorer (and judge) and model or pair
    DIR/likelihood/<model>-<hash>/run.sqlite       one run per model: log-likelihood benchmarks
    DIR/results.json, DIR/results.md

The scoring runs run together (each with up to --concurrency items and --max-calls judge calls in
flight). A scoring run reads the answers runs and never makes an answer, so a second judge or scorer
reuses the answers; a changed generation setting hashes to a new answers run, a changed judge,
template or rubric to a new scoring run. Every run resumes, and its model calls are cached in
it. A model or judge is loaded only when its run has work left. Benchmarks scored by
log-likelihood (truthfulqa_mc, hhh) are not answered: each model scores their choices in a run
of its own, whose records hold every choice's log-likelihood and the question's figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from selfalign.errors import UserError
from selfalign.llm import Model, load_model, load_provider
from selfalign.llm.ray_pool import RayOptions
from selfalign.llm.provider import Provider
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.inputs import Item

from .answers import Generation, answer
from .benchmarks import BENCHMARKS, load_benchmarks
from .epochs import check_reducer, with_epochs
from .likelihood import score_choices
from .scorers import JudgeSettings, Scorer, build_scorers
from .toxicity import toxicity_scorers
from .turns import add_references, turn_items


class EvalConfig(BaseModel):
    models: list[str] = Field(min_length=1)  # the first is the baseline
    benches: list[str] = Field(min_length=1)
    data: dict[str, str] = {}  # benchmark name -> file (or hub dataset name)
    out: str
    judge: str | None = None
    scorers: list[str] | None = None  # None: default_scorers()
    pairs: Literal["baseline", "all"] = "baseline"
    generation: Generation = Generation()
    judge_max_tokens: int = 512
    rubric_file: str | None = None
    refusal_phrases_file: str | None = None
    templates: str | None = None
    limit: int | None = None
    concurrency: int = 32  # items in flight per run
    max_calls: int = 64  # model calls in flight per model
    device: str | None = None  # for hf: models and judges
    ray: RayOptions | None = None  # the models' and the judge's calls on pools of Ray actors (llm.ray_pool)
    epochs: int = Field(1, ge=1)  # answers sampled per prompt (seeded); figures reduce them per prompt
    reducer: str = "mean"  # mean, max, majority, pass@k (stats.reduce_samples)
    reference: str | None = None  # MT-Bench reference answers (FastChat's reference_answer/gpt-4.jsonl)
    toxicity_classifier: str | None = None  # hf:PATH, or "judge"
    toxicity_label: str | None = None
    sentiment_classifier: str | None = None  # hf:PATH (bold)
    resamples: int = 10_000
    bootstrap_seed: int = 0
    progress: bool = True


def default_scorers(n_models: int, judge: str | None) -> list[str]:
    """Refusal always; with a judge also the harm classifier, two rubrics, and pairwise
    judging when there is a model to compare."""
    if judge is None:
        return ["refusal"]
    return ["refusal", "harm", "rubric:harmlessness", "rubric:helpfulness"] + (["pairwise"] if n_models > 1 else [])


@dataclass
class AnswerRun:
    spec: str
    key: str  # folder name under answers/
    records: dict[str, dict[str, Any]]  # item id -> {"answer", "finish_reason", ...}
    failures: dict[str, str]  # item id -> reason

    @property
    def formats(self) -> list[str]:
        return sorted({r["format"] for r in self.records.values()})


@dataclass
class LikelihoodRun:
    spec: str
    key: str  # folder name under likelihood/
    records: dict[str, dict[str, Any]]  # item id -> {"metrics": {...}, "loglikelihoods": [...], ...}
    failures: dict[str, str]


@dataclass
class ScoreRun:
    scorer: str
    candidate: AnswerRun
    baseline: AnswerRun | None
    folder: Path
    records: dict[str, dict[str, Any]]
    failures: dict[str, str]
    failures_counted: str = "both"  # Scorer.failures: "excluded", "non-success", or "both"
    anchor: dict[str, Any] | None = None


@dataclass
class Evaluation:
    config: EvalConfig
    items: list[Item]
    answers: list[AnswerRun]  # none when every benchmark is scored by log-likelihood
    scores: list[ScoreRun]
    likelihoods: list[LikelihoodRun]


def prepare(config: EvalConfig) -> tuple[list[Item], list[Scorer]]:
    """Read and check every input (benchmarks, rubrics, phrase lists, templates) before any call."""
    benches = load_benchmarks(config.benches, config.data, config.limit)
    items = [replace(item, idx=n) for n, item in enumerate(i for bench in benches.values() for i in bench)]
    scorers = build_scorers_of(config)
    check_reducer(config.reducer, config.epochs)
    if any(s.per_turn for s in scorers):
        items = add_references(items, config.reference)
    if any(BENCHMARKS[b].items_loader for b in config.benches):
        if config.epochs > 1 and config.generation.temperature == 0:
            raise UserError(f"--epochs {config.epochs} samples continuations: give --temperature above 0 (the paper samples at 1)")
        settings = JudgeSettings(0.0, config.judge_max_tokens, config.generation.seed)
        scorers += toxicity_scorers(config.toxicity_classifier, config.toxicity_label, config.sentiment_classifier,
                                    templates=config.templates, settings=settings, device=config.device)
    judged = [s.name for s in scorers if s.needs_judge]
    if judged and config.judge is None:
        raise UserError(f"--scorers {','.join(judged)} need a judge: add --judge SPEC (any model spec)")
    if any(s.pairwise for s in scorers) and len(config.models) < 2:
        raise UserError("--scorers pairwise compares models: give two --model options or more")
    return items, scorers


def build_scorers_of(config: EvalConfig) -> list[Scorer]:
    """The scorers named by --scorers (or the defaults), their files read and checked."""
    names = config.scorers or default_scorers(len(config.models), config.judge)
    settings = JudgeSettings(0.0, config.judge_max_tokens, config.generation.seed)
    return build_scorers(names, rubric_file=config.rubric_file, refusal_phrases_file=config.refusal_phrases_file,
                         templates=config.templates, settings=settings, judge=config.judge)


def run_eval(config: EvalConfig) -> Evaluation:
    items, scorers = prepare(config)
    if any(s.per_turn for s in scorers) and not config.generation.mt_bench:
        config = config.model_copy(update={"generation": config.generation.model_copy(update={"mt_bench": True})})
    return asyncio.run(_evaluate(config, items, scorers))


async def _evaluate(config: EvalConfig, items: list[Item], scorers: list[Scorer]) -> Evaluation:
    answered = with_epochs([item for item in items if not is_likelihood(item)], config.epochs)
    scored = [item for item in items if is_likelihood(item)]
    answers = [await _answer_run(spec, answered, config) for spec in config.models] if answered else []
    judge = _Judge(config)
    try:  # every scoring run at once, so all their judge calls are in flight together
        jobs = [(scorer, c, b) for scorer in (scorers if answered else []) for c, b in _jobs(scorer, answers, config.pairs)]
        scores = list(await asyncio.gather(*(_score_run(s, c, b, answered, judge, config) for s, c, b in jobs)))
    finally:
        await judge.close()
    likelihoods = [await _likelihood_run(spec, scored, config) for spec in config.models] if scored else []
    return Evaluation(config, items, answers, scores, likelihoods)


def is_likelihood(item: Item) -> bool:
    return BENCHMARKS[bench_of(item.id)].likelihood


def _jobs(scorer: Scorer, answers: list[AnswerRun], pairs: str) -> list[tuple[AnswerRun, AnswerRun | None]]:
    if not scorer.pairwise:
        return [(run, None) for run in answers]
    if pairs == "all":
        return [(answers[j], answers[i]) for i in range(len(answers)) for j in range(i + 1, len(answers))]
    return [(run, answers[0]) for run in answers[1:]]


async def _answer_run(spec: str, items: list[Item], config: EvalConfig) -> AnswerRun:
    settings = config.generation.model_dump(exclude={"mt_bench"} if not config.generation.mt_bench else set())
    key = f"{_slug(spec)}-{_hash(spec, settings)}"
    store = RunStore(Path(config.out) / "answers" / key)
    try:
        store.bind_config("eval-answers", {"model": spec, **settings})
        if _has_work(store, items):
            model = load_model(spec, cache=store, max_concurrency=config.max_calls, ray=config.ray,
                               **_provider_options(spec, config))
            try:
                work = partial(answer, model=model, generation=config.generation)
                await run_items(store, items, work, concurrency=config.concurrency, progress=config.progress,
                                label=f"answers of {spec}")
            finally:
                await model.close()
        records, failures = _results(store, items)
    finally:
        store.close()
    return AnswerRun(spec, key, records, failures)


async def _likelihood_run(spec: str, items: list[Item], config: EvalConfig) -> LikelihoodRun:
    key = f"{_slug(spec)}-{_hash(spec, 'loglikelihood')}"
    store = RunStore(Path(config.out) / "likelihood" / key)
    try:
        store.bind_config("eval-likelihood", {"model": spec})
        if _has_work(store, items):
            options = _provider_options(spec, config)
            model = load_model(spec, cache=store, max_concurrency=config.max_calls, ray=config.ray, **options)
            try:
                work = partial(score_choices, model=model)
                await run_items(store, items, work, concurrency=config.concurrency, progress=config.progress,
                                label=f"log-likelihoods of {spec}")
            finally:
                await model.close()
        records, failures = _results(store, items)
    finally:
        store.close()
    return LikelihoodRun(spec, key, records, failures)


async def _score_run(
    scorer: Scorer, candidate: AnswerRun, baseline: AnswerRun | None, items: list[Item], judge: "_Judge", config: EvalConfig
) -> ScoreRun:
    judge_part = f"-{_slug(config.judge or '')}" if scorer.needs_judge else ""
    scorer_dir = f"{scorer.name.replace(':', '-')}{judge_part}-{scorer.fingerprint}"
    pair_dir = candidate.key if baseline is None else f"{candidate.key}-vs-{baseline.key}"
    folder = Path(config.out) / "scores" / scorer_dir / pair_dir
    work_items = _scoring_items(scorer, candidate, baseline, items)
    store = RunStore(folder)
    try:
        store.bind_config(
            "eval-score",
            {"scorer": scorer.name, "fingerprint": scorer.fingerprint, "judge": config.judge if scorer.needs_judge else None,
             "candidate": candidate.key, "baseline": baseline.key if baseline else None},
        )
        if work_items and _has_work(store, work_items):
            model = Model(judge.provider(), cache=store, max_concurrency=config.max_calls) if scorer.needs_judge else None
            work = partial(scorer.score, judge=model)
            against = f" vs {baseline.spec}" if baseline is not None else ""
            await run_items(store, work_items, work, concurrency=config.concurrency, progress=config.progress,
                            label=f"{scorer.name} scores of {candidate.spec}{against}")
        records, failures = _results(store, work_items)
    finally:
        store.close()
    return ScoreRun(scorer.name, candidate, baseline, folder, records, failures, scorer.failures, scorer.anchor)


def _scoring_items(scorer: Scorer, candidate: AnswerRun, baseline: AnswerRun | None, items: list[Item]) -> list[Item]:
    """The prompts the scorer applies to that every model involved has answered, each with the
    answers it scores."""
    work = []
    for item in items:
        if not scorer.applies(item) or item.id not in candidate.records:
            continue
        if scorer.per_turn:  # one item per turn of a multi-turn question (MT-Bench)
            if baseline is None or item.id in baseline.records:
                work.extend(turn_items(item, candidate.records[item.id], baseline.records[item.id] if baseline else None))
            continue
        if baseline is None:
            extra = {**item.extra, "answer": candidate.records[item.id]["answer"]}
        elif item.id in baseline.records:
            extra = {**item.extra, "candidate": candidate.records[item.id]["answer"], "baseline": baseline.records[item.id]["answer"]}
        else:
            continue
        work.append(replace(item, extra=extra))
    return work


class _Judge:
    """The judge's provider, loaded on first use and shared by every scoring run (each wraps it
    in its own Model, whose call cache is that run's store)."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self._provider: Provider | None = None

    def provider(self) -> Provider:
        if self._provider is None:
            assert self.config.judge is not None
            options = _provider_options(self.config.judge, self.config)
            self._provider = load_provider(self.config.judge, ray=self.config.ray, **options)
        return self._provider

    async def close(self) -> None:
        if self._provider is not None:
            await self._provider.close()


def _provider_options(spec: str, config: EvalConfig) -> dict[str, Any]:
    """hf: models: the device, and the plain Question/Answer format for a model without a chat
    template (a base model), which generators refuse but an evaluation compares."""
    if not spec.startswith("hf:"):
        return {}
    return {"plain_format": True, **({"device": config.device} if config.device else {})}


def _has_work(store: RunStore, items: list[Item]) -> bool:
    """Add the items and reopen unfinished ones; True when some are left to run."""
    store.add_items(items)
    ids = [item.id for item in items]
    store.reopen_unfinished(retry_failed=True, ids=ids)
    return bool(store.pending(ids))


def _results(store: RunStore, items: list[Item]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Records and failure reasons of this evaluation's items (a run may hold more from earlier)."""
    ids = {item.id for item in items}
    records = {item.id: record for item, record in store.done_records() if item.id in ids}
    failures = {item_id: reason for item_id, reason in store.failures() if item_id in ids}
    return records, failures


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_.")[-48:] or "model"


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]


def bench_of(item_id: str) -> str:
    """Item ids are `BENCH/000012` (with `@E` for an epoch, `#turnN` for a turn)."""
    name = item_id.split("/", 1)[0]
    assert name in BENCHMARKS, item_id
    return name
