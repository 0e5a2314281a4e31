"""Training runs: loss and learning-rate curves from the trainer's state, and the run's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfalign.errors import UserError
from selfalign.train.checkpoint import STATE_FILE, SUMMARY_FILE, checkpoints, is_complete

LOGGED = ("loss", "learning_rate", "grad_norm", "epoch")


def is_training_run(folder: Path) -> bool:
    return state_file(folder) is not None


def state_file(folder: Path) -> Path | None:
    """The trainer state with the longest history: the finished run's, else the last whole
    checkpoint's."""
    if (folder / STATE_FILE).is_file():
        return folder / STATE_FILE
    whole = [path for step, path in checkpoints(folder) if is_complete(step, path)]
    return whole[0] / STATE_FILE if whole else None  # newest first


def load(folder: Path) -> dict[str, Any]:
    path = state_file(folder)
    assert path is not None
    state = _json(path)
    summary = _json(folder / SUMMARY_FILE) if (folder / SUMMARY_FILE).is_file() else {}
    tokens, seconds = summary.get("tokens", state.get("num_input_tokens_seen")), summary.get("seconds")
    log = [{"step": e["step"], **{k: e[k] for k in LOGGED if k in e}} for e in state.get("log_history", []) if "loss" in e]
    return {
        "overview": {
            "method": f"train {summary.get('method', '')}".strip(),
            "config": summary.get("config", {}),
            "items": None,
            "steps": state.get("global_step"),
            "max_steps": state.get("max_steps"),
            "finished": bool(summary),
            "usage": {"tokens": tokens},
            "seconds": seconds,
            "tokens_per_second": round(tokens / seconds, 1) if tokens and seconds else None,
            "failures": [],
        },
        "view": {"log": log, "summary": summary, "state_file": str(path)},
    }


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc}); is the training run's folder whole?") from exc
