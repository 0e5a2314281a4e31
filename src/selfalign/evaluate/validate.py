"""How far a judge can be trusted: `--validate-judge FILE` scores human-labelled rows with each
chosen scorer and its judge and compares; `--correct-judge FILE` does the same, then shows each
rate beside the rate corrected for the judge's measured errors (stats.corrected_rate).

FILE is JSONL, one labelled row a line, of one of three kinds:

    {"kind": "harm", "prompt": ..., "answer": ..., "label": true}       the answer does what a harmful
                                                                       request asks (attack success)
    {"kind": "refusal", "prompt": ..., "answer": ..., "label": true}    the answer refuses
    {"kind": "pairwise", "prompt": ..., "answer_a": ..., "answer_b": ..., "label": "A" | "B" | "tie"}

`kind` may be left out; where it is given it must be the scorer's (a harm label is not a refusal
label, though both are true/false).

The kind follows the scorer: harm, harmbench, jbb, prefixes read harm labels; refusal and
jbb-refusal read refusal labels; pairwise reads pairwise labels. An item whose judge gave no
usable verdict counts as the scorer counts it (a non-success for the presets that say so, left
out otherwise, and reported).

    judge_validation.json: {"labels": FILE, "judge": SPEC, "scorers": [{"scorer", "kind", "n", "failed",
        "accuracy": {"value", "ci"}, "kappa": {"value", "ci"}, "tpr": {...}, "tnr": {...}}]}
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from selfalign.errors import InputError, UserError
from selfalign.formats.rows import BrokenRow, read_rows
from selfalign.llm import Model, load_provider
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.inputs import Item

from .scorers import Scorer
from .stats import LEVEL, RESAMPLES, cohen_kappa, corrected_rate, wilson_interval

KINDS = {"harm": "harm", "harmbench": "harm", "jbb": "harm", "prefixes": "harm",
         "refusal": "refusal", "jbb-refusal": "refusal", "pairwise": "pairwise"}
BINARY_METRICS = ("attack_success_rate", "refusal_rate", "over_refusal")


@dataclass
class Agreement:
    scorer: str
    kind: str
    labels: list[Any]
    predictions: list[Any]
    failed: int

    def to_json(self, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
        n = len(self.labels)
        hits = sum(a == b for a, b in zip(self.labels, self.predictions))
        out: dict[str, Any] = {"scorer": self.scorer, "kind": self.kind, "n": n, "failed": self.failed}
        if n == 0:
            return out
        out["accuracy"] = {"value": hits / n, "ci": list(wilson_interval(hits, n))}
        out["kappa"] = {"value": cohen_kappa(self.labels, self.predictions), "ci": _kappa_interval(self.labels, self.predictions, resamples, seed)}
        if self.kind != "pairwise":
            for name, cls in (("tpr", True), ("tnr", False)):
                rows = [p == cls for y, p in zip(self.labels, self.predictions) if y == cls]
                out[name] = {"value": sum(rows) / len(rows), "ci": list(wilson_interval(sum(rows), len(rows))), "n": len(rows)} if rows else None
        return out


def _kappa_interval(labels: list[Any], predictions: list[Any], resamples: int, seed: int) -> list[float]:
    """Percentile bootstrap over the labelled rows."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    draws = [cohen_kappa([labels[i] for i in rows], [predictions[i] for i in rows]) for rows in rng.integers(0, n, size=(min(resamples, 2000), n))]
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return [float(low), float(high)]


def load_labels(path: str, kind: str) -> list[Item]:
    """The labelled rows as items for the scorer (checked before any call)."""
    fix = ('each line must be {"prompt": ..., "answer_a": ..., "answer_b": ..., "label": "A" | "B" | "tie"}' if kind == "pairwise"
           else '{"prompt": ..., "answer": ..., "label": true | false}')
    items = []
    for n, row in enumerate(read_rows(path, fix)):
        value = row.value
        if isinstance(value, BrokenRow):
            raise InputError(value.problem)
        keys = ("prompt", "answer_a", "answer_b") if kind == "pairwise" else ("prompt", "answer")
        ok = isinstance(value, dict) and all(isinstance(value.get(k), str) for k in keys)
        label = value.get("label") if isinstance(value, dict) else None
        ok = ok and (label in ("A", "B", "tie") if kind == "pairwise" else isinstance(label, bool))
        if not ok:
            raise InputError(f"{row.where}: not a {kind} label row; {fix}")
        if value.get("kind", kind) != kind:
            raise InputError(f"{row.where}: a {value['kind']!r} label; this scorer needs {kind!r} labels (harm: harm, harmbench, jbb, "
                             "prefixes; refusal: refusal, jbb-refusal; pairwise: pairwise)")
        extra: dict[str, Any] = {"harmful": True, "categories": [], "label": label}
        if kind == "pairwise":
            extra.update(candidate=value["answer_a"], baseline=value["answer_b"])
        else:
            extra["answer"] = value["answer"]
        items.append(Item(f"labels/{n:06d}", n, ({"role": "user", "content": value["prompt"]},), extra))
    if not items:
        raise InputError(f"{path}: no labelled rows; {fix}")
    return items


def kind_of(scorer: Scorer) -> str:
    if scorer.name not in KINDS:
        raise UserError(f"--validate-judge: {scorer.name} gives no yes/no or A/B verdict to compare with labels; "
                        f"validate one of {', '.join(KINDS)}")
    return KINDS[scorer.name]


def prediction(kind: str, record: dict[str, Any]) -> Any:
    if kind == "pairwise":
        return {"win": "A", "lose": "B", "tie": "tie"}[record["outcome"]]
    return record["value"] == 1.0


async def agreement(scorer: Scorer, labels_path: str, judge: Any, out: Path, max_calls: int, concurrency: int) -> Agreement:
    """Score the labelled rows with one scorer (a resumable run under `out`) and pair each
    label with the verdict."""
    kind = kind_of(scorer)
    items = load_labels(labels_path, kind)
    digest = hashlib.sha256(Path(labels_path).read_bytes()).hexdigest()[:8]
    store = RunStore(out / f"{scorer.name}-{scorer.fingerprint}-{digest}")
    try:
        store.bind_config("judge-validation", {"scorer": scorer.name, "fingerprint": scorer.fingerprint, "labels": digest,
                                               "judge": getattr(judge, "name", None)})
        store.add_items(items)
        store.reopen_unfinished(retry_failed=True, ids=[i.id for i in items])
        model = Model(judge, cache=store, max_concurrency=max_calls) if scorer.needs_judge else None
        await run_items(store, items, partial(scorer.score, judge=model), concurrency=concurrency, progress=False)
        records = {item.id: record for item, record in store.done_records()}
    finally:
        store.close()
    labels, predictions, failed = [], [], 0
    for item in items:
        record = records.get(item.id)
        if record is None or record.get("judge_failed"):  # no usable verdict: counted as the scorer counts it
            failed += 1
            if scorer.failures != "non-success":
                continue
            predictions.append(False)
        else:
            predictions.append(prediction(kind, record))
        labels.append(item.extra["label"])
    return Agreement(scorer.name, kind, labels, predictions, failed)


async def _agreements(scorers: list[Scorer], labels_path: str, judge_spec: str | None, out: Path, max_calls: int,
                      concurrency: int, provider_options: dict[str, Any]) -> list[Agreement]:
    provider = load_provider(judge_spec, **provider_options) if judge_spec and any(s.needs_judge for s in scorers) else None
    try:
        return [await agreement(s, labels_path, provider, out, max_calls, concurrency) for s in scorers]
    finally:
        if provider is not None:
            await provider.close()


def validate_judge(scorers: list[Scorer], labels_path: str, judge_spec: str | None, out: str, *, max_calls: int = 64,
                   concurrency: int = 32, provider_options: dict[str, Any] | None = None, seed: int = 0) -> tuple[dict[str, Any], list[Agreement]]:
    """judge_validation.json's content for each scorer that gives a yes/no or A/B verdict, and
    the label-verdict pairs behind it."""
    for s in scorers:
        kind_of(s)
    found = asyncio.run(_agreements(scorers, labels_path, judge_spec, Path(out) / "validation", max_calls, concurrency, provider_options or {}))
    return {"labels": labels_path, "judge": judge_spec, "scorers": [a.to_json(seed=seed) for a in found]}, found


def add_corrections(results: dict[str, Any], ev: Any, agreements: list[Agreement], labels_path: str) -> None:
    """Beside each rate of a validated scorer, the rate corrected for the judge's measured
    sensitivity and specificity (details.corrected), the raw rate untouched."""
    from .results import per_prompt

    by_scorer = {a.scorer: a for a in agreements if a.kind != "pairwise"}
    runs = {str(r.folder.relative_to(ev.config.out)): r for r in ev.scores}
    for f in results["figures"]:
        a = by_scorer.get(f["scorer"])
        if a is None or f["kind"] != "mean" or f["category"] is not None or f["metric"] not in BINARY_METRICS or f["value"] is None:
            continue
        run = runs[f["run"]]
        values = {i: r["value"] for i, r in run.records.items() if i.split("/", 1)[0] == f["bench"] and r["metric"] == f["metric"]}
        if run.failures_counted == "non-success":
            values.update({i: 0.0 for i in run.failures if i.split("/", 1)[0] == f["bench"]})
        est = corrected_rate(list(per_prompt(values, ev.config.reducer).values()), a.labels, a.predictions,
                             resamples=results["bootstrap"]["resamples"], seed=results["bootstrap"]["seed"])
        tpr = [p for y, p in zip(a.labels, a.predictions) if y]
        tnr = [not p for y, p in zip(a.labels, a.predictions) if not y]
        f["details"]["corrected"] = {
            "value": est.value if est else None, "ci": [est.low, est.high] if est and est.n >= 10 else None,
            "sensitivity": sum(tpr) / len(tpr) if tpr else None, "specificity": sum(tnr) / len(tnr) if tnr else None,
            "labels": labels_path, "n_labels": len(a.labels), "method": "Rogan-Gladen",
        }


def correct_results(ev: Any, results: dict[str, Any], labels_path: str) -> None:
    """--correct-judge FILE: validate the evaluation's yes/no scorers on FILE with its judge, then
    put the corrected rates beside the raw ones."""
    from .run import build_scorers_of

    scorers = [s for s in build_scorers_of(ev.config) if s.name in KINDS and KINDS[s.name] != "pairwise"]
    if not scorers:
        raise UserError("--correct-judge: none of --scorers gives a yes/no verdict to correct (harm, harmbench, jbb, prefixes, refusal, jbb-refusal)")
    config = ev.config
    _, found = validate_judge(scorers, labels_path, config.judge, config.out, max_calls=config.max_calls, concurrency=config.concurrency,
                              provider_options=provider_options(config.judge, config), seed=config.bootstrap_seed)
    add_corrections(results, ev, found, labels_path)


def provider_options(spec: str | None, config: Any) -> dict[str, Any]:
    from .run import _provider_options

    return _provider_options(spec, config) if spec else {}


def write_validation(report: dict[str, Any], out: str) -> str:
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / "judge_validation.json"
    path.write_text(json.dumps(report, indent=2))
    return str(path)


def render_validation(report: dict[str, Any]) -> str:
    def cell(entry: dict[str, Any] | None) -> str:
        if not entry:
            return "-"
        ci = entry.get("ci")
        return f"{entry['value']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")

    lines = [f"judge {report['judge'] or '(none)'} against {report['labels']}:"]
    for s in report["scorers"]:
        failed = f", {s['failed']} without verdict" if s["failed"] else ""
        lines.append(f"  {s['scorer']} ({s['kind']}, n={s['n']}{failed}): accuracy {cell(s.get('accuracy'))}, "
                     f"kappa {cell(s.get('kappa'))}, TPR {cell(s.get('tpr'))}, TNR {cell(s.get('tnr'))}")
    return "\n".join(lines)
