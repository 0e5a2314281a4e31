import asyncio
import json

from selfalign.errors import ItemFailed
from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items


def make_items(tmp_path, n):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(n)))
    return load_items(path)


def echo_item(model):
    async def run_item(item):
        result = await model.chat(item.messages, seed=item.idx)
        if "7" in item.prompt:
            raise ItemFailed("seven is unlucky")
        return {"answer": result.text}

    return run_item


def test_runs_all_items_records_failures_and_usage(tmp_path):
    store = RunStore(tmp_path / "run")
    model = Model(ScriptedProvider(lambda r: r.messages[-1].content[::-1]), cache=store)
    summary = asyncio.run(run_items(store, make_items(tmp_path, 10), echo_item(model), concurrency=4, progress=False))
    assert (summary.done, summary.failed) == (9, 1)
    assert store.failures() == [("000007", "ItemFailed: seven is unlucky")]
    records = dict((i.id, r) for i, r in store.done_records())
    assert records["000003"] == {"answer": "3 noitseuq"}
    assert summary.usage["calls"] == 10


def test_resume_skips_done_items_and_replays_cached_calls(tmp_path):
    provider = ScriptedProvider(lambda r: "ok")
    items = make_items(tmp_path, 8)
    store = RunStore(tmp_path / "run")
    asyncio.run(run_items(store, items, echo_item(Model(provider, cache=store)), progress=False))
    assert len(provider.requests) == 8
    store.close()
    # second run: the failed item is retried, but its call comes from the cache
    store = RunStore(tmp_path / "run")
    summary = asyncio.run(run_items(store, items, echo_item(Model(provider, cache=store)), progress=False))
    assert (summary.ran, summary.done, summary.failed) == (1, 7, 1)
    assert len(provider.requests) == 8 and summary.usage["cached_calls"] == 1


def test_changed_input_is_refused(tmp_path):
    import pytest

    from selfalign.errors import UserError

    store = RunStore(tmp_path / "run")
    asyncio.run(run_items(store, make_items(tmp_path, 2), echo_item(Model(ScriptedProvider(lambda r: "x"))), progress=False))
    (tmp_path / "in.jsonl").write_text('{"prompt": "something else"}\n')
    with pytest.raises(UserError, match="input file changed"):
        store.add_items(load_items(tmp_path / "in.jsonl"))


def test_changed_config_is_refused(tmp_path):
    import pytest

    from selfalign.errors import UserError

    store = RunStore(tmp_path)
    store.bind_config("critique-revise", {"model": "a", "seed": 0})
    store.bind_config("critique-revise", {"model": "a", "seed": 0})
    with pytest.raises(UserError, match="seed: 0 -> 1"):
        store.bind_config("critique-revise", {"model": "a", "seed": 1})


def test_state_survives_reopen(tmp_path):
    store = RunStore(tmp_path)
    store.put_state("memory", "agent-3", [{"q": "a", "a": "b"}])
    store.close()
    assert RunStore(tmp_path).state_items("memory") == [("agent-3", [{"q": "a", "a": "b"}])]


def test_objects_from_before_a_run_are_left_out_of_collections_during_it(tmp_path):
    """A full collection during a run walks only what the run made (the loaded model and the
    rest from before would stall every call in flight); garbage the run makes is still freed,
    and the objects from before are back under the collector once the run ends."""
    import gc
    import weakref

    class Node:
        pass

    from_before = []
    seen, freed = [], []

    async def run_item(item):
        seen.append(any(o is from_before for o in gc.get_objects()))
        cycle = Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        freed.append(gone() is None)
        return {}

    store = RunStore(tmp_path / "run")
    asyncio.run(run_items(store, make_items(tmp_path, 2), run_item, progress=False))
    assert seen == [False, False] and freed == [True, True]
    assert any(o is from_before for o in gc.get_objects())


def test_a_run_inside_a_run_leaves_the_outer_run_frozen(tmp_path):
    import gc

    from_before = []
    seen_after_inner = []

    async def inner_item(item):
        return {}

    async def outer_item(item):
        inner = RunStore(tmp_path / f"inner{item.id}")
        await run_items(inner, make_items(tmp_path, 1), inner_item, progress=False)
        seen_after_inner.append(any(o is from_before for o in gc.get_objects()))
        return {}

    asyncio.run(run_items(RunStore(tmp_path / "outer"), make_items(tmp_path, 1), outer_item, progress=False))
    assert seen_after_inner == [False]
    assert any(o is from_before for o in gc.get_objects())
