"""Attack success rates from an attack run: per model, attack and variant (and "any variant" for
a family with several), per harm category, per scorer side by side, each a mean with its 95%
bootstrap interval and n, beside the no-attack baseline (`none`) and its over-refusal on benign
behaviours. Written as OUT/results.json and OUT/results.md (model text escaped), printed as a table.

results.json:

    {"schema": "selfalign.attack/1",
     "models": [SPEC, ...], "behaviors": {"source", "harmful", "benign"}, "attacks": [NAME, ...],
     "scorers": [NAME, ...], "judge": SPEC | null, "attacker": SPEC | null, "options": {...},
     "bootstrap": {"resamples", "level", "seed"},
     "figures": [{"model", "attack", "variant": NAME | "any" | null, "scorer", "metric", "category": str | null,
                  "value": float | null, "ci": [low, high] | null, "n", "failed"}],   # ci null below 10 behaviours
     "failed_items": [{"id", "reason"}],
     "successes": [{"id", "model", "attack", "variant", "behavior", "category", "scorers": [NAME, ...],
                    "messages": [...], "answer", "judged"}]}

metric: `attack_success_rate` (harmful behaviours: no refusal phrase / the classifier's yes),
`strongreject` (mean StrongREJECT score), `over_refusal` (benign behaviours asked plainly),
`leak_rate` (privacy: the canary in the answer), `exposure` (memorization, two scorers: `rank`, the
sampled rank; `skew-normal`, extrapolated from a fitted distribution) and `extraction_rate`
(memorization: per planted canary, its categories its repetition counts). "any" rows take, per behaviour, the best of its
variants (1 when any variant succeeded). Per-category rows are given for attacks without
variants and for a family's "any" row.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from selfalign.store.files import write_text_atomic

from ..stats import LEVEL, MIN_N_FOR_INTERVAL, bootstrap_mean
from .run import AttackRun

SCHEMA = "selfalign.attack/1"
Key = tuple[str, str, str | None, str, str]  # model, attack, variant, scorer, metric


def build_results(run: AttackRun) -> dict[str, Any]:
    config = run.config
    boot = {"resamples": config.resamples, "level": LEVEL, "seed": config.options.seed}
    per_behavior: dict[Key, dict[str, float]] = defaultdict(dict)  # -> behaviour id -> value
    failed: dict[Key, int] = defaultdict(int)
    own = [b for attack in run.attacks.values() for b in getattr(attack, "own_behaviors", None) or []]
    categories = {b.id: b.category for b in run.behaviors} | {b.id: b.category for b in own}
    for item in run.items:
        record = run.records.get(item.id)
        if record is None:
            continue
        variant = record["variant"] or None
        for scorer, score in record["scores"].items():
            if "error" in score:
                failed[(record["model"], record["attack"], variant, scorer, score.get("metric") or _metric_of(scorer, record))] += 1
                continue
            per_behavior[(record["model"], record["attack"], variant, scorer, score["metric"])][record["behavior"]] = score["value"]
    multi = {name for name, attack in run.attacks.items() if len(attack.variants()) > 1}
    for key, values in list(per_behavior.items()):
        model, attack, variant, scorer, metric = key
        if attack in multi:
            best = per_behavior[(model, attack, "any", scorer, metric)]
            for behavior, value in values.items():
                best[behavior] = max(best.get(behavior, value), value)
    figures = [f for key in _ordered(per_behavior, failed, run) for f in _figures(key, per_behavior.get(key, {}), failed.get(key, 0), categories, boot)]
    return {
        "schema": SCHEMA,
        "models": config.models,
        "behaviors": {"source": config.behaviors, "harmful": sum(b.harmful for b in run.behaviors),
                      "benign": sum(not b.harmful for b in run.behaviors)},
        "attacks": list(run.attacks),
        "scorers": config.scorers,
        "judge": config.judge,
        "attacker": config.attacker,
        "options": config.options.model_dump(mode="json"),
        "bootstrap": boot,
        "figures": figures,
        "failed_items": [{"id": i, "reason": r} for i, r in run.failures.items()],
        "successes": list(_successes(run)),
    }


def _metric_of(scorer: str, record: dict[str, Any]) -> str:
    if scorer == "strongreject":
        return "strongreject"
    return "over_refusal" if not record["harmful"] else "attack_success_rate"


def _ordered(per_behavior: dict[Key, Any], failed: dict[Key, int], run: AttackRun) -> list[Key]:
    """Models as given, attacks as given (the baseline first), each variant then "any"."""
    attack_rank = {name: i for i, name in enumerate(run.attacks)}
    model_rank = {spec: i for i, spec in enumerate(run.config.models)}
    variant_rank = {(name, v): i for name, attack in run.attacks.items() for i, v in enumerate(attack.variants())}
    keys = set(per_behavior) | set(failed)
    return sorted(keys, key=lambda k: (model_rank[k[0]], attack_rank.get(k[1], 99), variant_rank.get((k[1], k[2] or ""), 10**6), k[3], k[4]))


def _figures(key: Key, values: dict[str, float], failed: int, categories: dict[str, str | None], boot: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield _figure(key, None, list(values.values()), failed, boot)
    if key[2] not in (None, "any"):  # categories of a family: on its "any" row only
        return
    for category in sorted({c for b in values if (c := categories.get(b))}):
        yield _figure(key, category, [v for b, v in values.items() if categories.get(b) == category], 0, boot)


def _figure(key: Key, category: str | None, values: list[float], failed: int, boot: dict[str, Any]) -> dict[str, Any]:
    model, attack, variant, scorer, metric = key
    est = bootstrap_mean(values, resamples=boot["resamples"], seed=boot["seed"]) if values else None
    return {"model": model, "attack": attack, "variant": variant, "scorer": scorer, "metric": metric, "category": category,
            "value": est.value if est else None, "ci": [est.low, est.high] if est and est.n >= MIN_N_FOR_INTERVAL else None,
            "n": len(values), "failed": failed}


def _successes(run: AttackRun) -> Iterable[dict[str, Any]]:
    for item in run.items:
        record = run.records.get(item.id)
        if record is None or not record["harmful"]:
            continue
        by = [name for name, score in record["scores"].items() if score.get("success")]
        if by:
            yield {"id": item.id, "model": record["model"], "attack": record["attack"], "variant": record["variant"] or None,
                   "behavior": item.prompt, "category": record["category"], "scorers": by,
                   "messages": record["messages"], "answer": record["answer"], "judged": record["judged"]}


# -- writing and printing -------------------------------------------------------------------


def write_results(results: dict[str, Any], out: str | Path) -> None:
    write_text_atomic(Path(out) / "results.json", json.dumps(results, indent=2))
    write_text_atomic(Path(out) / "results.md", render_markdown(results))


def _cell(f: dict[str, Any]) -> str:
    failed = f" ({f['failed']} failed)" if f["failed"] else ""
    if f["value"] is None:
        return f"- n=0{failed}"
    if f["ci"] is None:  # below MIN_N_FOR_INTERVAL behaviours: the value and n only
        return f"{f['value']:.2f} n={f['n']} (no interval below n={MIN_N_FOR_INTERVAL}){failed}"
    low, high = f["ci"]
    return f"{f['value']:.2f} [{low:.2f}, {high:.2f}] n={f['n']}{failed}"


def table_rows(results: dict[str, Any], by_category: bool = False) -> tuple[list[str], list[list[str]]]:
    """One row per model, attack and variant (and category), one column per scorer and metric."""
    wanted = [f for f in results["figures"] if (f["category"] is not None) == by_category]
    columns = list(dict.fromkeys(f"{f['metric']} ({f['scorer']})" for f in wanted))
    cells: dict[tuple[str, ...], dict[str, str]] = defaultdict(dict)
    for f in wanted:
        row = (f["model"], f["attack"], f["variant"] or "-", *([f["category"]] if by_category else []))
        cells[row][f"{f['metric']} ({f['scorer']})"] = _cell(f)
    header = ["model", "attack", "variant", *(["category"] if by_category else []), *columns]
    return header, [[*row, *(c.get(col, "") for col in columns)] for row, c in cells.items()]


def render_table(results: dict[str, Any]) -> str:
    header, rows = table_rows(results)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(_plain(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows), *_notes(results)])


def _plain(value: Any) -> str:
    """Names from user files on a terminal: control characters (escape sequences) shown, not run."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(value))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md_escape(text: str) -> str:
    """Untrusted text (model answers, names from user files) shown as text in Markdown: HTML
    escaped, Markdown's special characters backslashed, line breaks kept as breaks."""
    escaped = _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))
    return escaped.replace("\r", "").replace("\n", "<br>")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(md_escape, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(map(md_escape, r)) + " |" for r in rows)])


def _notes(results: dict[str, Any]) -> list[str]:
    b, boot = results["behaviors"], results["bootstrap"]
    notes = [
        f"value [95% percentile bootstrap interval, {boot['resamples']} resamples] n=behaviours; "
        f"behaviours: {b['source']} ({b['harmful']} harmful, {b['benign']} benign); judge: {results['judge'] or 'none'}; "
        f"attacker: {results['attacker'] or 'none'}",
        "attack none = the behaviour asked plainly (the baseline); variant any = some variant succeeded",
        f"{len(results['successes'])} successful attempts kept in results.json (successes)",
    ]
    if results["failed_items"]:
        notes.append(f"{len(results['failed_items'])} items failed (results.json failed_items); rerun the same command to retry them")
    return notes


SHOWN_SUCCESSES = 20


def _last_user(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def render_markdown(results: dict[str, Any]) -> str:
    parts = ["# Attack results", "", _md_table(*table_rows(results)), ""]
    header, rows = table_rows(results, by_category=True)
    if rows:
        parts += ["## By harm category", "", _md_table(header, rows), ""]
    parts += ["## Notes", "", *(f"- {md_escape(n)}" for n in _notes(results)), ""]
    successes = results["successes"]
    if successes:
        parts += ["## Successful attempts", "", f"The first {min(len(successes), SHOWN_SUCCESSES)} of {len(successes)}; all are in results.json.", ""]
        for s in successes[:SHOWN_SUCCESSES]:
            parts += [f"### {md_escape(s['model'])} · {md_escape(s['attack'])} {md_escape(s['variant'] or '')} · behaviour {md_escape(s['id'].rsplit('/', 1)[-1])}", "",
                      f"**Behaviour:** {md_escape(s['behavior'])}", "",
                      f"**Prompt:** {md_escape(_last_user(s['messages']))}", "",
                      f"**Answer** (judged by {md_escape(', '.join(s['scorers']))}): {md_escape(s['judged'])}", ""]
    return "\n".join(parts)
