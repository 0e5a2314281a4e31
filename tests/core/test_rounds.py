"""run_rounds: rounds of items where each round reads what the previous round ended with."""

import ast
import asyncio
from pathlib import Path

import pytest

from selfalign.errors import ItemFailed
from selfalign.runner import run_rounds
from selfalign.store import Item, RunStore


class Kill(BaseException):
    """Stands in for a process kill: escapes the runner's per-item error handling."""


class Relay:
    """Each item of round r adds 1 to its runner's total as it stood at the end of round r-1;
    the round end folds the records into the totals (state "relay.total")."""

    namespace = "relay.rounds"

    def __init__(self, store, rounds=3, runners=4, kill_at=None, fail=()):
        self.store, self.rounds, self.runners = store, rounds, runners
        self.kill_at, self.fail, self.started = kill_at, set(fail), []

    def key(self, round_):
        return f"r{round_:03d}"

    def items(self, round_):
        return [Item(f"{self.key(round_)}-{n}", (round_ - 1) * self.runners + n, (), {"round": round_, "n": n})
                for n in range(self.runners)]

    async def run_item(self, item):
        self.started.append(item.id)
        if item.id == self.kill_at:
            raise Kill()
        if item.id in self.fail:
            raise ItemFailed("planted")
        await asyncio.sleep(0)
        total = self.store.get_state("relay.total", str(item.extra["n"])) or 0
        return {"n": item.extra["n"], "total": total + 1}

    def end_round(self, round_, records, failures):
        for rec in records:  # idempotent: the same records give the same totals
            self.store.put_state("relay.total", str(rec["n"]), rec["total"])
        return {"round": round_, "done": len(records), "failed": [i for i, _ in failures]}

    def describe(self, summary):
        return f"round {summary['round']}: {summary['done']} done"


def run(folder, **options):
    store = RunStore(folder)
    relay, lines = Relay(store, **options), []
    try:
        summaries = asyncio.run(run_rounds(store, relay, concurrency=2, progress=False, report=lines.append))
        return summaries, {i.id: r for i, r in store.done_records()}, lines, relay.started
    finally:
        store.close()


def test_each_round_sees_the_state_the_previous_round_ended_with(tmp_path):
    summaries, records, lines, _ = run(tmp_path / "run")
    assert [s["done"] for s in summaries] == [4, 4, 4]
    assert [records[f"r{r:03d}-1"]["total"] for r in (1, 2, 3)] == [1, 2, 3]
    assert lines == ["round 1: 4 done", "round 2: 4 done", "round 3: 4 done"]


def test_a_kill_mid_round_resumes_at_the_item_and_gives_the_same_records(tmp_path):
    _, clean, _, _ = run(tmp_path / "clean")
    with pytest.raises(Kill):
        run(tmp_path / "killed", kill_at="r002-2")
    _, resumed, lines, started = run(tmp_path / "killed")
    assert resumed == clean
    assert lines[0] == "round 1: 4 done (finished earlier)" and "earlier" not in lines[1]
    assert not any(i.startswith("r001") for i in started)  # done rounds are not run again
    assert "r002-0" not in started and "r002-2" in started  # nor done items of the killed round


def test_failed_items_are_summarised_and_stay_failed_once_their_round_ended(tmp_path):
    summaries, records, _, _ = run(tmp_path / "run", fail={"r001-3"})
    assert summaries[0]["failed"] == ["r001-3"] and "r001-3" not in records
    _, _, _, started = run(tmp_path / "run")  # a rerun retries failed items of unfinished rounds only
    assert started == []


def test_methods_know_neither_the_runner_nor_the_store():
    """DESIGN.md's layers: a method is an async function from an item to a record; the runner
    and the store drive it (shared types such as Item excepted)."""
    methods = Path(__file__).parents[2] / "src" / "selfalign" / "methods"
    offenders = []
    for path in methods.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("selfalign.runner") or node.module in ("selfalign.store", "selfalign.store.run_store"):
                    offenders.append(f"{path.name}: {node.module}")
    assert offenders == []
