"""Evaluations (`selfalign eval` folders): the figures of results.json, and every judged item
with the judge's reason, from the scoring runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfalign.errors import UserError
from selfalign.evaluate.results import SCHEMA
from selfalign.store import RunStore
from selfalign.store.run_store import STORE_FILE

from ..overview import overview

ANSWERED = ("answer", "candidate", "baseline")


def is_evaluation(folder: Path) -> bool:
    try:
        return _results(folder / "results.json") is not None
    except UserError:
        return False


def load(folder: Path) -> dict[str, Any]:
    results = _results(folder / "results.json")
    # a model evaluated by log-likelihood only has no answers run
    spec_of = {m["answers"].split("/", 1)[1]: m["spec"] for m in results["models"] if m.get("answers")}
    rows, judged, start = [], [], None
    for path in sorted(folder.glob(f"*/**/{STORE_FILE}")):
        store = RunStore.open_existing(path.parent)
        try:
            run_rows, config = store.item_rows(), store.run_info().get("config", {})
            created = store.created()
        finally:
            store.close()
        rows += run_rows
        start = created if start is None or (created and created < start) else start
        if "scorer" in config:
            judged += [_judged(row, config, spec_of) for row in run_rows]
    config = {k: results.get(k) for k in ("judge", "judge_max_tokens", "generation", "bootstrap")}
    config["models"] = [m["spec"] for m in results["models"]]
    config["benchmarks"] = [b["name"] for b in results["benchmarks"]]
    return {"overview": overview("eval", config, rows, start), "view": {"results": results, "judged": judged}}


def _judged(row: dict[str, Any], config: dict[str, Any], spec_of: dict[str, str]) -> dict[str, Any]:
    extra = row["input"].get("extra", {})
    return {
        "id": row["id"],
        "status": row["status"],
        "error": row["error"],
        "scorer": config["scorer"],
        "model": spec_of.get(config.get("candidate"), config.get("candidate")),
        "vs": spec_of.get(config.get("baseline"), config.get("baseline")),
        "bench": row["id"].split("/", 1)[0],
        "category": extra.get("category"),
        "prompt": row["input"]["messages"][-1]["content"],
        **{k: extra[k] for k in ANSWERED if k in extra},
        "record": row["record"],
    }


def _results(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc}); rerun `selfalign eval` with the same options to rewrite it") from exc
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise UserError(f"{path}: not an evaluation's results (schema {SCHEMA!r} expected)")
    return results
