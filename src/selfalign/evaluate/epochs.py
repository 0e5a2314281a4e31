"""Several samples per prompt (`--epochs N`): the answers of epoch E > 1 are items `ID@E`, seeded
apart by their id; figures reduce each prompt's samples to one value (stats.reduce_samples).
"""

from __future__ import annotations

from dataclasses import replace

from selfalign.errors import UserError
from selfalign.store.inputs import Item

from .stats import REDUCERS


def with_epochs(items: list[Item], epochs: int) -> list[Item]:
    """Each prompt `epochs` times: the first keeps its id, the others are `ID@2`, `ID@3`, ..., so
    their answers are seeded apart and an existing run's answers are the first epoch."""
    return [item if e == 1 else replace(item, id=f"{item.id}@{e}") for item in items for e in range(1, epochs + 1)]


def prompt_of(item_id: str) -> str:
    """The prompt an answer, epoch or turn item belongs to: `BENCH/000012`."""
    return item_id.split("#", 1)[0].split("@", 1)[0]


def check_reducer(reducer: str, epochs: int) -> None:
    if reducer in ("mean", "max", "majority"):
        return
    k = reducer[5:] if reducer.startswith("pass@") else ""
    if not k.isdigit() or not 1 <= int(k) <= epochs:
        raise UserError(f"--reducer {reducer}: choose {', '.join(REDUCERS)} (pass@k with 1 <= k <= --epochs {epochs})")
