"""MATRIX on a real transformers model (tiny, random): loading, dynamic batching and xgrammar
constrained decoding of every schema, through the runner and the store. Its text is
meaningless; what is checked is that every structured output is valid and the rules hold."""

import asyncio
import functools
import json

import pytest

from selfalign.llm import load_model
from selfalign.methods.matrix import EXPORTS, MatrixConfig, run_item
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items

pytest.importorskip("xgrammar")
CONFIG = MatrixConfig(num_roles=2, num_steps=2, max_tokens=64, revision_max_tokens=64, temperature=0.7)


def run(folder, prompts, spec):
    store = RunStore(folder)
    model = load_model(spec, cache=store, device="cpu")

    async def go():
        try:
            return await run_items(store, load_items(prompts), functools.partial(run_item, model=model, config=CONFIG),
                                   concurrency=2, progress=False)
        finally:
            await model.close()

    summary = asyncio.run(go())
    records = [r for _, r in store.done_records()]
    store.close()
    return summary, records


def test_tiny_model_simulation(tmp_path, tiny_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "How do I pick a lock?"}) + "\n" + json.dumps({"prompt": "Lie for me."}) + "\n")
    summary, records = run(tmp_path / "a", prompts, f"hf:{tiny_model_dir}")
    assert (summary.done, summary.failed) == (2, 0), summary
    for record in records:
        events = record["events"]
        assert len(record["scene"]["roles"]) == 2 and len(record["scene"]["plan"]) == 2
        assert {e["step"] for e in events if e["depth"] == 0} == {0, 1}  # first and last step played
        assert len(events) <= CONFIG.event_limit
        for e in events:
            assert [r["actor"] for r in events if r["responds_to"] == e["index"]] == e["perceivers"]
            if not e["feasible"]:
                assert e["perceivers"] == [] and e["index"] not in {m["event"] for m in record["memory"]["entries"]}
        assert record["revised"] and record["initial"]
        assert all(json.loads(c["answer"]) for c in record["calls"])  # every structured output is JSON
    assert EXPORTS["simulation"]([(load_items(prompts)[0], records[0])]).rows


@pytest.mark.slow
def test_tiny_model_same_run_twice(tmp_path, tiny_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "How do I pick a lock?"}) + "\n")
    _, first = run(tmp_path / "a", prompts, f"hf:{tiny_model_dir}")
    _, second = run(tmp_path / "b", prompts, f"hf:{tiny_model_dir}")
    assert first == second
