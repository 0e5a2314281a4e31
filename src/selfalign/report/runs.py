"""Read one run folder for the report: what kind of run it is, its overview, its view's data.

    a generator run   FOLDER/run.sqlite (matrix, sandbox, critique-revise, ...): items, records,
                      failures, calls, tokens, time
    an evaluation     FOLDER/results.json (selfalign.eval/1) and its scores/ runs
    another run       FOLDER/run.sqlite of a method without a view (attack): overview and items
    a training run    FOLDER/trainer_state.json or FOLDER/checkpoint-N/trainer_state.json
    a self-align run  FOLDER/stages.json: each stage's subfolder that exists, in order
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfalign.errors import UserError
from selfalign.store import RunStore
from selfalign.store.run_store import STORE_FILE

from . import views
from .overview import store_overview

SELF_ALIGN_STAGES = "stages.json"  # written by `selfalign self-align` into its --out


def read_runs(folder: str | Path, *, full: bool = False) -> list[dict[str, Any]]:
    """The runs in `folder`: one, or a `self-align` folder's stages."""
    path = Path(folder)
    if (path / SELF_ALIGN_STAGES).is_file() and not (path / STORE_FILE).is_file():
        stages = sorted(p for p in path.iterdir() if p.is_dir() and p.name[:1].isdigit() and "-" in p.name)
        return [read_run(stage, full=full) for stage in stages if _is_run(stage)]
    return [read_run(folder, full=full)]


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
