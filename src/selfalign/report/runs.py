"""Read one run folder for the report: what kind of run it is, its overview, its view's data.

    a generator run   FOLDER/run.sqlite (matrix, sandbox, critique-revise, ...): items, records,
                      failures, calls, tokens, time
    an evaluation     FOLDER/results.json (selfalign.eval/1) and its scores/ runs
    another run       FOLDER/run.sqlite of a method without a view (attack): overview and items
    a training run    FOLDER/trainer_state.json or FOLDER/checkpoint-N/trainer_state.json
    a self-align run  FOLDER/stages.json or its stages' subfolders: each stage that ran, in
                      order; `run_notes` says which did not
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfalign.errors import UserError
from selfalign.methods.principles.stages import STAGES, STAGES_FILE
from selfalign.store import RunStore
from selfalign.store.run_store import STORE_FILE

from . import views
from .overview import store_overview


def read_runs(folder: str | Path, *, full: bool = False) -> list[dict[str, Any]]:
    """The runs in `folder`: one, or the stages of a `self-align` folder that ran."""
    path = Path(folder)
    if is_self_align(path):
        return [read_run(path / stage, full=full) for stage in STAGES if _is_run(path / stage)]
    return [read_run(folder, full=full)]


def is_self_align(path: Path) -> bool:
    """A `self-align` --out: its record of stages, or a stage's folder (a run that stopped in its
    first stage has written no record yet)."""
    return not (path / STORE_FILE).is_file() and (
        (path / STAGES_FILE).is_file() or any((path / stage).is_dir() for stage in STAGES))


def run_notes(folder: str | Path) -> list[str]:
    """What the page cannot show as a run: the stages of a `self-align` folder that did not run."""
    path = Path(folder)
    if not is_self_align(path):
        return []
    ran = [stage for stage in STAGES if _is_run(path / stage)]
    missing = [stage for stage in STAGES if stage not in ran]
    if not missing:
        return []
    record = path / STAGES_FILE
    finished = json.loads(record.read_text("utf-8")).get("finished", {}) if record.is_file() else {}
    if not ran:
        why = "No stage has written a run yet."
    elif ran[-1] in finished:
        why = f"It stopped after {ran[-1]}, which finished: rerun the same self-align command to go on."
    else:
        why = (f"It stopped in {ran[-1]}, which is not recorded as finished in {STAGES_FILE}: it failed, kept "
               f"nothing for the next stage, or was stopped; see {path / ran[-1]}.")
    return [f"{folder} (self-align): stages that ran: {', '.join(ran) or 'none'}; "
            f"stages that did not run: {', '.join(missing)}. {why}"]


def _is_run(folder: Path) -> bool:
    return ((folder / STORE_FILE).is_file() or (folder / "results.json").is_file()
            or views.training.is_training_run(folder))


def read_run(folder: str | Path, *, full: bool = False) -> dict[str, Any]:
    """{"name", "kind", "overview", "view"} of the run in `folder`."""
    path = Path(folder)
    if views.evaluation.is_evaluation(path):
        return {"name": str(folder), "kind": "eval", **views.evaluation.load(path)}
    if (path / STORE_FILE).is_file():  # a generator's run, or another kind of run with a store (attack)
        return _store_run(path, full)
    if (path / "results.json").is_file():
        views.evaluation.load(path)  # says what is wrong with it
    if views.training.is_training_run(path):
        return {"name": str(folder), "kind": "train", **views.training.load(path)}
    raise UserError(
        f"{folder}: not a run folder; a report reads the --out folder of a generator (run.sqlite), "
        "of `selfalign eval` (results.json) or of `selfalign train` (trainer_state.json)"
    )


def _store_run(path: Path, full: bool) -> dict[str, Any]:
    store = RunStore.open_existing(path)
    try:
        rows = store.item_rows()
        method = store.run_info().get("method", "unknown")
        view = views.VIEWS.get(method)
        items = [_item(row, view, full) for row in rows]
        return {
            "name": str(path),
            "kind": method if view else "run",
            "overview": store_overview(store, rows),
            "view": {"items": items, **(view.extra(store) if view else {})},
            "deferred": list(getattr(view, "DEFERRED", ())),  # record keys a large page loads when an item is opened
        }
    finally:
        store.close()


def _item(row: dict[str, Any], view: Any, full: bool) -> dict[str, Any]:
    record = row["record"]
    if record is not None and view is not None:
        record = view.record(record, full)
    inp = {k: row["input"][k] for k in ("messages", "extra") if k in row["input"]}
    return {"id": row["id"], "status": row["status"], "error": row["error"], "input": inp, "record": record}
