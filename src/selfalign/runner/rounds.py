"""Rounds of items, where round r+1 depends on round r's records (a Sandbox simulation: agents
act on the memories that the previous round's revisions left).

Each round's items run through `run_items`. When every item of the round has finished, the
method's `end_round` folds the round's records into its state and returns the round's summary,
which is stored, marking the round finished. A run killed at any instant reruns only the items
not yet done (their finished model calls replay from the cache), then the round end, which must
therefore be idempotent; so a resumed run gives the same records as an uninterrupted one.

A round whose `items` are empty ends the rounds early: the method has nothing left to do.

A failed item of a finished round stays failed: later rounds were built without its record, and
rerunning it would make the run differ from what they saw. `retry_failed` reopens the failed
items of the unfinished round only.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from selfalign.store.inputs import Item
from selfalign.store.run_store import RunStore

from .runner import run_items


class Rounds(Protocol):
    """What the runner needs of a method that runs in rounds."""

    rounds: int
    namespace: str  # state namespace holding the summaries of finished rounds

    def key(self, round_: int) -> str:
        """The round's name in ids and state keys."""
        ...

    def items(self, round_: int) -> list[Item]: ...

    async def run_item(self, item: Item) -> Any: ...

    def end_round(self, round_: int, records: list[dict[str, Any]], failures: list[tuple[str, str]]) -> dict[str, Any]:
        """Fold a finished round's records (done items, in item order) into the method's state,
        idempotently, and return the round's summary; `failures` are (id, reason)."""
        ...

    def describe(self, summary: dict[str, Any]) -> str:
        """One line for the console."""
        ...


async def run_rounds(
    store: RunStore,
    method: Rounds,
    *,
    concurrency: int = 32,
    retry_failed: bool = True,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every round of `method` in order, resuming where a previous run stopped; the summaries."""
    summaries = []
    for round_ in range(1, method.rounds + 1):
        summary = store.get_state(method.namespace, method.key(round_))
        if summary is not None:
            report(method.describe(summary) + " (finished earlier)")
        else:
            items = method.items(round_)
            if not items:  # the method has nothing left to do (e.g. it has kept all it wanted)
                break
            await run_items(store, items, method.run_item, concurrency=concurrency, retry_failed=retry_failed,
                            progress=progress, label=f"round {round_} of {method.rounds}")
            summary = method.end_round(round_, *_outcome(store, items))
            store.put_state(method.namespace, method.key(round_), summary)
            report(method.describe(summary))
        summaries.append(summary)
    return summaries


def _outcome(store: RunStore, items: list[Item]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The round's done records in item order, and its failures."""
    ids = {item.id for item in items}
    records = [record for item, record in store.done_records() if item.id in ids]
    return records, [(i, reason) for i, reason in store.failures() if i in ids]
