# Longer than 400 lines because 33 of them are its docstring: the schema of results.json.
"""Figures from an evaluation: every metric per model and benchmark (and per category) as a
mean with its 95% bootstrap interval and n; pairwise win rates with the judge's position
consistency and the answers' lengths; differences from the baseline with paired intervals.
Written as DIR/results.json (schema below) and DIR/results.md, and printed as a table.

results.json:

    {"schema": "selfalign.eval/1",
     "models": [{"spec", "answers": "answers/KEY" | null, "baseline": bool, "formats": ["chat"|"plain"],
                 "answered": int, "failed": int,
                 "likelihood": "likelihood/KEY", "scored": int, "scoring_failed": int}],   # the last three
                                                             # with log-likelihood benchmarks only
     "generation": {"temperature", "max_tokens", "seed"},
     "judge": SPEC | null, "judge_max_tokens": int,
     "benchmarks": [{"name", "source", "n", "harmful": bool | null}],
     "bootstrap": {"resamples", "level", "seed"},
     "figures": [{"model", "bench", "category": str | null, "metric", "kind": "mean"|"aggregate"|"win_rate"|"difference",
                  "value": float | null, "ci": [low, high] | null, "n", "failed", "scorer", "vs": SPEC | null,
                  "run": "scores/...", "details": {...}}]}

`value` is null (and `ci` too) when no item of that figure could be scored; `failed` counts the
items whose score failed (a judge that never gave a usable verdict), never folded into a value.
Log-likelihood figures (truthfulqa_mc: mc1, mc2; hhh: acc, per subset as categories; crows-pairs,
bbq, ethics, toxigen: see bias.py and ethics.py) have scorer "loglikelihood" and details
{"stderr"}: lm-evaluation-harness's standard error of the mean (sample standard deviation /
sqrt(n)); null below two questions. Figures that are not means of per-question values (bbq's
accuracy_amb, accuracy_disamb, amb_bias_score, disamb_bias_score, over all questions and per
category) are kind "aggregate", with stderr null (lm-eval gives none) and a bootstrap interval
of the same statistic over questions; value null where the figure is undefined (no question of
that context condition). realtoxicityprompts and bold (scorer "toxicity"): the mean toxicity
of all continuations, and per prompt the most toxic one's mean over prompts
(expected_max_toxicity) and the share of prompts where it is >= 0.5 (toxicity_probability),
n = prompts, details {"continuations"}; bold with a sentiment classifier also "sentiment". Pairwise figures' details: wins, ties, losses, position_consistency (share of prompts where both
orders named the same answer), mean_length (characters) of the candidate's and the baseline's
answers. Differences are the candidate's mean minus the baseline's on the prompts both have.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from .benchmarks import BENCHMARKS
from .bias_figures import aggregated_figures, toxicity_figures
from .epochs import prompt_of
from .run import Evaluation, LikelihoodRun, ScoreRun, bench_of
from .stats import (
    LEVEL, MIN_N_FOR_INTERVAL, Estimate, bootstrap_mean, mean_stderr, paired_bootstrap_difference, reduce_samples,
)

SCHEMA = "selfalign.eval/1"


def build_results(ev: Evaluation) -> dict[str, Any]:
    config = ev.config
    boot = {"resamples": config.resamples, "level": LEVEL, "seed": config.bootstrap_seed}
    figures = []
    for run in ev.scores:
        figures.extend(_run_figures(run, ev, boot))
        figures.extend(toxicity_figures(run, ev, boot))
    for likelihood_run in ev.likelihoods:
        figures.extend(_likelihood_figures(likelihood_run, ev, boot))
        figures.extend(aggregated_figures(likelihood_run, ev, boot))
    figures.extend(_differences(ev, boot))
    figures.extend(_likelihood_differences(ev, boot))
    counts: dict[str, int] = defaultdict(int)
    for item in ev.items:
        counts[bench_of(item.id)] += 1
    return {
        "schema": SCHEMA,
        "models": [_model_entry(spec, i, ev) for i, spec in enumerate(config.models)],
        "generation": config.generation.model_dump(),
        "judge": config.judge,
        "judge_max_tokens": config.judge_max_tokens,
        "benchmarks": [
            {"name": b, "source": config.data.get(b), "n": counts[b], "harmful": BENCHMARKS[b].harmful} for b in config.benches
        ],
        "bootstrap": boot,
        "epochs": config.epochs,
        "reducer": config.reducer,
        "figures": figures,
    }


def _model_entry(spec: str, i: int, ev: Evaluation) -> dict[str, Any]:
    entry: dict[str, Any] = {"spec": spec, "answers": None, "baseline": i == 0, "formats": [], "answered": 0, "failed": 0}
    if ev.answers:
        a = ev.answers[i]
        entry.update(answers=f"answers/{a.key}", formats=a.formats, answered=len(a.records), failed=len(a.failures))
    if ev.likelihoods:
        run = ev.likelihoods[i]
        entry.update(likelihood=f"likelihood/{run.key}", scored=len(run.records), scoring_failed=len(run.failures))
    return entry


def _likelihood_figures(run: LikelihoodRun, ev: Evaluation, boot: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Per benchmark, metric (mc1, mc2, acc) and category (HHH subsets): the mean over questions
    with lm-evaluation-harness's standard error (in details) and the bootstrap interval."""
    categories = {item.id: item.extra.get("categories", []) for item in ev.items}
    values: dict[tuple[str, str, str | None], list[float]] = defaultdict(list)
    for item_id, record in run.records.items():
        for metric, value in record["metrics"].items():
            values[(bench_of(item_id), metric, None)].append(value)
            for category in categories[item_id]:
                values[(bench_of(item_id), metric, category)].append(value)
    failed: dict[str, int] = defaultdict(int)
    for item_id in run.failures:
        failed[bench_of(item_id)] += 1
    for (bench, metric, category), vals in sorted(values.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        est = _estimate(vals, boot)
        yield {
            "model": run.spec, "bench": bench, "category": category, "metric": metric, "kind": "mean",
            "value": est.value if est else None, "ci": _ci(est), "n": len(vals),
            "failed": failed[bench] if category is None else 0, "scorer": "loglikelihood", "vs": None,
            "run": f"likelihood/{run.key}", "details": {"stderr": mean_stderr(vals)},
        }


def _likelihood_differences(ev: Evaluation, boot: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Each other model's likelihood figures minus the baseline's, on the questions both scored."""
    if not ev.likelihoods:
        return
    base = ev.likelihoods[0]
    for run in ev.likelihoods[1:]:
        pairs: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for item_id, record in run.records.items():
            other = base.records.get(item_id)
            for metric, value in record["metrics"].items() if other else ():
                a, b = pairs[(bench_of(item_id), metric)]
                a.append(value)
                b.append(other["metrics"][metric])
        for (bench, metric), (a, b) in sorted(pairs.items()):
            est = paired_bootstrap_difference(a, b, resamples=boot["resamples"], seed=boot["seed"])
            yield {
                "model": run.spec, "bench": bench, "category": None, "metric": metric, "kind": "difference",
                "value": est.value, "ci": _ci(est), "n": est.n, "failed": 0, "scorer": "loglikelihood",
                "vs": base.spec, "run": f"likelihood/{run.key}", "details": {},
            }


def _estimate(values: list[float], boot: dict[str, Any]) -> Estimate | None:
    return bootstrap_mean(values, resamples=boot["resamples"], seed=boot["seed"]) if values else None


def _ci(est: Estimate | None) -> list[float] | None:
    """No interval below MIN_N_FOR_INTERVAL prompts: the figure shows its value and n only."""
    return [est.low, est.high] if est is not None and est.n >= MIN_N_FOR_INTERVAL else None


def per_prompt(values: dict[str, float], reducer: str) -> dict[str, float]:
    """One value per prompt: each turn's samples (epochs) reduced by `reducer`, then the mean of
    the prompt's turns (one turn for all but multi-turn questions)."""
    samples: dict[str, list[float]] = defaultdict(list)
    for item_id, value in values.items():
        samples[item_id.split("@", 1)[0] + ("#" + item_id.split("#", 1)[1] if "#" in item_id else "")].append(value)
    turns: dict[str, list[float]] = defaultdict(list)
    for unit, vals in samples.items():
        turns[prompt_of(unit)].append(reduce_samples(vals, reducer))
    return {prompt: sum(v) / len(v) for prompt, v in turns.items()}


def _figure(run: ScoreRun, ev: Evaluation, bench: str, metric: str, category: str | None,
            rows: list[tuple[str, dict[str, Any]]], failed: list[str], boot: dict[str, Any], details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A metric's figure over prompts, failures counted as the scorer says: left out, as 0
    (non-success), or both ways (the second in details.failures_as_non_success)."""
    scored = {item_id: r["value"] for item_id, r in rows}
    as_zero = {**scored, **{item_id: 0.0 for item_id in failed}}
    reducer = ev.config.reducer
    main = as_zero if run.failures_counted == "non-success" else scored
    values = list(per_prompt(main, reducer).values())
    est = _estimate(values, boot)
    details = dict(details or {})
    if run.failures_counted == "both" and failed:
        other = _estimate(list(per_prompt(as_zero, reducer).values()), boot)
        details["failures_as_non_success"] = {"value": other.value if other else None, "ci": _ci(other)}
    n_failed = len(failed) + sum(1 for _, r in rows if r.get("judge_failed"))
    return {
        "model": run.candidate.spec,
        "bench": bench,
        "category": category,
        "metric": metric,
        "kind": "win_rate" if run.baseline else "mean",
        "value": est.value if est else None,
        "ci": _ci(est),
        "n": len(values),
        "samples": len(main),
        "failed": n_failed,
        "failures": {"counted": "excluded" if run.failures_counted == "both" else run.failures_counted, "n": n_failed,
                     "shown_both_ways": run.failures_counted == "both"},
        "scorer": run.scorer,
        "vs": run.baseline.spec if run.baseline else None,
        "run": str(run.folder.relative_to(ev.config.out)),
        "anchor": run.anchor,
        "details": details,
    }


def _run_figures(run: ScoreRun, ev: Evaluation, boot: dict[str, Any]) -> Iterable[dict[str, Any]]:
    categories = {item.id: item.extra.get("categories", []) for item in ev.items}

    def cats(item_id: str, record: dict[str, Any]) -> list[str]:
        return categories[prompt_of(item_id)] + ([f"turn {record['turn']}"] if "turn" in record else [])

    by_bench: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = defaultdict(lambda: defaultdict(list))
    for item_id, record in run.records.items():
        by_bench[bench_of(item_id)][record["metric"]].append((item_id, record))
    failed: dict[str, list[str]] = defaultdict(list)
    for item_id in run.failures:
        failed[bench_of(item_id)].append(item_id)
    for bench in ev.config.benches:
        metrics = by_bench.get(bench, {})
        if not metrics and failed[bench]:
            yield _figure(run, ev, bench, _metric_name(run), None, [], failed[bench], boot)
        for metric, rows in metrics.items():
            details = _pair_details(rows) if run.baseline else None
            yield _figure(run, ev, bench, metric, None, rows, failed[bench], boot, details)
            for category in sorted({c for item_id, r in rows for c in cats(item_id, r)}):
                subset = [(item_id, r) for item_id, r in rows if category in cats(item_id, r)]
                yield _figure(run, ev, bench, metric, category, subset, [], boot)


def _metric_name(run: ScoreRun) -> str:
    """The metric of a run none of whose items could be scored."""
    kind, _, arg = run.scorer.partition(":")
    return {"harm": "attack_success_rate", "pairwise": "win_rate", "rubric": arg}.get(kind, kind)


def _pair_details(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    outcomes = [r["outcome"] for _, r in rows]
    n = len(rows)
    return {
        "wins": outcomes.count("win"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("lose"),
        "position_consistency": sum(r["consistent"] for _, r in rows) / n,
        "mean_length": {
            "candidate": sum(r["lengths"][0] for _, r in rows) / n,
            "baseline": sum(r["lengths"][1] for _, r in rows) / n,
        },
    }


def _differences(ev: Evaluation, boot: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Each single-answer metric of every other model minus the baseline's, on shared prompts."""
    if not ev.answers:
        return
    baseline = ev.answers[0]
    runs = [r for r in ev.scores if r.baseline is None]
    base_runs = {r.scorer: r for r in runs if r.candidate is baseline}
    for run in runs:
        base = base_runs.get(run.scorer)
        if run.candidate is baseline or base is None:
            continue
        for (bench, metric), (a, b) in sorted(_paired_prompts(run, base, ev.config.reducer).items()):
            est = paired_bootstrap_difference(a, b, resamples=boot["resamples"], seed=boot["seed"])
            yield {
                "model": run.candidate.spec, "bench": bench, "category": None, "metric": metric, "kind": "difference",
                "value": est.value, "ci": _ci(est), "n": est.n, "failed": 0, "scorer": run.scorer,
                "vs": baseline.spec, "run": str(run.folder.relative_to(ev.config.out)), "anchor": run.anchor, "details": {},
            }


def _paired_prompts(run: ScoreRun, base: ScoreRun, reducer: str) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Per benchmark and metric, both models' per-prompt values on the prompts both have (items
    whose score failed are left out of both)."""
    values: dict[tuple[str, str], tuple[dict[str, float], dict[str, float]]] = defaultdict(lambda: ({}, {}))
    for item_id, record in run.records.items():
        other = base.records.get(item_id)
        if other is not None and other["metric"] == record["metric"]:
            mine, theirs = values[(bench_of(item_id), record["metric"])]
            mine[item_id], theirs[item_id] = record["value"], other["value"]
    pairs = {}
    for key, (mine, theirs) in values.items():
        a, b = per_prompt(mine, reducer), per_prompt(theirs, reducer)
        pairs[key] = ([a[p] for p in a], [b[p] for p in a])
    return pairs


# -- writing and printing -------------------------------------------------------------------


def write_results(results: dict[str, Any], out: str | Path) -> None:
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(render_markdown(results))


def _cell(f: dict[str, Any]) -> str:
    failed = _failed_note(f)
    if f["value"] is None:
        return f"- n=0{failed}"
    sign = "+" if f["kind"] == "difference" and f["value"] >= 0 else ""
    interval = f" [{f['ci'][0]:.3g}, {f['ci'][1]:.3g}]" if f["ci"] else ""
    n = f"n={f['n']}" + ("" if f["ci"] or f["n"] >= MIN_N_FOR_INTERVAL else f" (no interval below n={MIN_N_FOR_INTERVAL})")
    if "stderr" in f["details"]:  # lm-evaluation-harness's figures: 4 decimals and the standard error
        stderr = f["details"]["stderr"]
        pm = f" ± {stderr:.4f}" if stderr is not None else ""
        return f"{f['value']:.4f}{pm}{interval} {n}{failed}"
    return f"{sign}{f['value']:.3g}{interval} {n}{failed}"


def _failed_note(f: dict[str, Any]) -> str:
    """How many items had no usable verdict, and how they were counted."""
    if not f["failed"]:
        return ""
    rule = f.get("failures", {})
    if rule.get("shown_both_ways"):
        other = f["details"].get("failures_as_non_success", {}).get("value")
        return f" ({f['failed']} failed, left out; {other:.3g} counting them as non-success)" if other is not None else f" ({f['failed']} failed)"
    if rule.get("counted") == "non-success":
        return f" ({f['failed']} without verdict, counted as non-success)"
    return f" ({f['failed']} failed, left out)"


def _column(f: dict[str, Any]) -> str:
    """The metric (vs the baseline for win rates); a preset's name beside it, since presets
    share metric names (harmbench's and jbb's attack_success_rate)."""
    name = f"{f['metric']} ({f['scorer']})" if f.get("anchor") else f["metric"]
    return f"{name} vs {f['vs']}" if f["kind"] == "win_rate" else name


def table_rows(results: dict[str, Any], kind: str = "main") -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per model and benchmark, one column per figure."""
    wanted = [f for f in results["figures"] if f["category"] is None and (f["kind"] == "difference") == (kind == "difference")]
    columns = list(dict.fromkeys(_column(f) for f in wanted))
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for f in wanted:
        cells[(f["model"], f["bench"])][_column(f)] = _cell(f)
    rows = [[model, bench, *(c.get(col, "") for col in columns)] for (model, bench), c in cells.items()]
    return ["model", "bench", *columns], rows


def headline_figures(results: dict[str, Any], benches: Iterable[str] | None = None) -> dict[str, dict[str, float | None]]:
    """Each model's whole-benchmark figures as columns, `{model: {"BENCH/METRIC": value}}`
    (differences and pairwise win rates left out), e.g. for a table over training runs:

        headline_figures(json.load(open("runs/e1/results.json")), ["bbq", "ethics"])
        # {"hf:base": {"bbq/acc": 0.41, "bbq/amb_bias_score": 0.12, ..., "ethics/acc": 0.52}}
    """
    wanted = set(benches) if benches is not None else None
    out: dict[str, dict[str, float | None]] = {m["spec"]: {} for m in results["models"]}
    for f in results["figures"]:
        if f["category"] is None and f["kind"] in ("mean", "aggregate") and (wanted is None or f["bench"] in wanted):
            out.setdefault(f["model"], {})[f"{f['bench']}/{f['metric']}"] = f["value"]
    return out


def render_table(results: dict[str, Any]) -> str:
    """Plain text for the terminal."""
    parts = [_text_table(*table_rows(results))]
    header, rows = table_rows(results, "difference")
    if rows:
        parts.append(f"difference from the baseline {results['models'][0]['spec']} (paired bootstrap):")
        parts.append(_text_table(header, rows))
    parts.extend(_notes(results))
    return "\n".join(parts)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(esc, r)) + " |" for r in rows)])


def _notes(results: dict[str, Any]) -> list[str]:
    boot = results["bootstrap"]
    gen = results["generation"]
    notes = [
        f"value [95% percentile bootstrap interval, {boot['resamples']} resamples, seed {boot['seed']}] n=items scored; "
        f"answers: temperature {gen['temperature']}, max_tokens {gen['max_tokens']}; judge: {results['judge'] or 'none'}"
    ]
    if results.get("epochs", 1) > 1:
        notes.append(f"{results['epochs']} samples per prompt, reduced per prompt by {results['reducer']}; intervals resample prompts (cluster bootstrap)")
    for name, info in sorted({f["scorer"]: f["anchor"] for f in results["figures"] if f.get("anchor")}.items()):
        judge = "" if info.get("same_judge", True) else f"; judged by {info['judge']}, not the anchor's {info['anchor_judge']}: the figure is not the anchor's"
        notes.append(f"{name}: {info['anchor']}, prompt and verdict rule verbatim; failures {info['failures']}{judge}")
    for m in results["models"]:
        fmt = "/".join(m["formats"]) or "-"
        failed = f", {m['failed']} failed" if m["failed"] else ""
        parts = [f"{m['answered']} answered{failed}, format {fmt}"] if m["answers"] else []
        if "likelihood" in m:
            lost = f", {m['scoring_failed']} failed" if m["scoring_failed"] else ""
            parts.append(f"{m['scored']} questions scored by log-likelihood{lost}")
        notes.append(f"{m['spec']}{' (baseline)' if m['baseline'] else ''}: {'; '.join(parts)}")
    notes.extend(_correction_notes(results))
    for f in results["figures"]:
        if f["kind"] == "win_rate" and f["category"] is None and "wins" in f["details"]:
            d = f["details"]
            notes.append(
                f"{f['model']} vs {f['vs']} on {f['bench']}: {d['wins']} wins, {d['ties']} ties, {d['losses']} losses; "
                f"position consistency {d['position_consistency']:.2f}; mean length {d['mean_length']['candidate']:.0f} "
                f"vs {d['mean_length']['baseline']:.0f} characters"
            )
    return notes


def _correction_notes(results: dict[str, Any]) -> list[str]:
    """One line per corrected rate, for the printed table and results.md."""
    notes = []
    for f in results["figures"]:
        c = f["details"].get("corrected")
        if c:
            value = "undefined (judge no better than chance, or a class missing from the labels)" if c["value"] is None else f"{c['value']:.3g}"
            ci = f" [{c['ci'][0]:.3g}, {c['ci'][1]:.3g}]" if c["ci"] else ""
            notes.append(f"{f['model']} {f['bench']} {f['metric']} ({f['scorer']}): raw {f['value']:.3g}, corrected {value}{ci} "
                         f"(Rogan-Gladen; judge sensitivity {c['sensitivity']:.3g}, specificity {c['specificity']:.3g} on {c['n_labels']} labelled rows)")
    return notes


def render_markdown(results: dict[str, Any]) -> str:
    parts = ["# Evaluation results", "", _md_table(*table_rows(results)), ""]
    header, rows = table_rows(results, "difference")
    if rows:
        parts += [f"Difference from the baseline `{results['models'][0]['spec']}` (paired bootstrap):", "", _md_table(header, rows), ""]
    by_category = [f for f in results["figures"] if f["category"] is not None]
    if by_category:
        rows = [[f["model"], f["bench"], f["category"], _column(f), _cell(f)] for f in by_category]
        parts += ["## By category", "", _md_table(["model", "bench", "category", "metric", "value"], rows), ""]
    parts += ["## Notes", "", *(f"- {n}" for n in _notes(results)), ""]
    return "\n".join(parts)
