"""A rerun retries a failed item with new seeds for the calls that failed it (the retry count
enters the seed), so a retry can succeed; calls that went well still replay from the cache."""

import asyncio
import json

from pydantic import BaseModel

from selfalign.errors import ItemFailed
from selfalign.llm import Model, RetryPolicy
from selfalign.llm.types import Completion
from selfalign.runner import run_items
from selfalign.store import RunStore, load_items

SEED = 7


class CutAtFirstSeed:
    """Answers `SEED`'s requests with a text cut at its budget (as a small model rambling past
    max_tokens does), any other seed with a finished one; `bad_json` answers SEED with broken JSON."""

    constrained = False

    def __init__(self, bad_json: bool = False) -> None:
        self.name = "cut-at-first-seed"
        self.bad_json = bad_json
        self.seeds: list[int] = []

    async def complete(self, request):
        self.seeds.append(request.sampling.seed)
        first = request.sampling.seed == SEED
        if self.bad_json:
            text = '{"answer": ' if first else '{"answer": "fine"}'
            return Completion(text=text, prompt_tokens=3, completion_tokens=2, finish_reason="stop")
        return Completion(text="and so on and so on" if first else "a finished answer", prompt_tokens=3,
                          completion_tokens=5, finish_reason="length" if first else "stop")

    async def close(self) -> None:
        return None


class Answer(BaseModel):
    answer: str


def items(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"prompt": "tell me everything"}) + "\n")
    return load_items(path)


def answer_or_fail(model, schema=None):
    async def run_item(item):
        greeting = await model.chat([{"role": "user", "content": "hello"}], seed=1)  # a call that goes well
        result = await model.chat(item.messages, schema=schema, seed=SEED, temperature=0.0, max_tokens=5)
        if result.finish_reason == "length":
            raise ItemFailed("the answer was cut at 5 tokens")
        return {"greeting": greeting.text, "answer": result.parsed.answer if schema else result.text}

    return run_item


def run(tmp_path, provider, schema=None, retry_failed=True):
    store = RunStore(tmp_path / "run")
    try:
        model = Model(provider, cache=store, retry=RetryPolicy(schema_attempts=1))
        summary = asyncio.run(run_items(store, items(tmp_path), answer_or_fail(model, schema),
                                        retry_failed=retry_failed, progress=False))
        return summary, dict((item.id, record) for item, record in store.done_records())
    finally:
        store.close()


def test_a_truncated_item_succeeds_when_the_rerun_retries_it(tmp_path):
    provider = CutAtFirstSeed()
    summary, _ = run(tmp_path, provider)
    assert (summary.done, summary.failed) == (0, 1)
    assert provider.seeds == [1, SEED]

    summary, records = run(tmp_path, provider)  # the same command again
    assert (summary.done, summary.failed) == (1, 0)
    assert records["000000"] == {"greeting": "a finished answer", "answer": "a finished answer"}
    assert len(provider.seeds) == 3 and provider.seeds[2] not in (1, SEED)  # the greeting replayed; the cut call drawn anew
    assert summary.usage["cached_calls"] == 1


def test_each_retry_draws_a_new_seed_and_a_kept_failure_is_not_retried(tmp_path):
    provider = CutAtFirstSeed()
    provider.complete_original = provider.complete

    async def always_cut(request):
        completion = await provider.complete_original(request)
        if request.sampling.seed != 1:
            completion.finish_reason = "length"
        return completion

    provider.complete = always_cut
    for _ in range(3):
        summary, _ = run(tmp_path, provider)
        assert summary.failed == 1
    retried_seeds = provider.seeds[2:]
    assert len(retried_seeds) == 2 and len(set(retried_seeds)) == 2 and SEED not in retried_seeds

    summary, _ = run(tmp_path, provider, retry_failed=False)  # --no-retry-failed: left failed, no call
    assert summary.ran == 0 and len(provider.seeds) == 4


def test_an_answer_that_failed_its_schema_is_drawn_again_on_retry(tmp_path):
    provider = CutAtFirstSeed(bad_json=True)
    summary, _ = run(tmp_path, provider, schema=Answer)
    assert summary.failed == 1

    summary, records = run(tmp_path, provider, schema=Answer)
    assert summary.done == 1 and records["000000"]["answer"] == "fine"


def test_an_item_resumed_after_a_kill_replays_its_cut_answer_as_an_uninterrupted_run_would(tmp_path):
    provider = CutAtFirstSeed()
    store = RunStore(tmp_path / "run")
    model = Model(provider, cache=store)
    item = items(tmp_path)[0]
    store.add_items([item])
    store.mark_running(item.id)  # killed in flight: its cut answer was already cached
    asyncio.run(model.chat(item.messages, seed=SEED, temperature=0.0, max_tokens=5))
    store.close()

    summary, _ = run(tmp_path, provider)
    assert summary.failed == 1  # not a retry: the cached answer is replayed, not drawn anew
    assert provider.seeds == [SEED, 1]
