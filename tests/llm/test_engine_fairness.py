"""The engine under pressure: fair turns while long rows decode, callers that give up, close()
during a long decode. A random model (it never ends a turn) keeps rows running to their limit."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from selfalign.llm import decode_loop
from selfalign.llm.checkpoints import load_pretrained
from selfalign.llm.engine import BatchEngine, Row


def make_engine(model_dir, **options) -> BatchEngine:
    model, tokenizer = load_pretrained(str(model_dir), dtype=torch.float32)
    return BatchEngine(model.eval(), tokenizer, eos_token_ids=[tokenizer.eos_token_id],
                       pad_token_id=tokenizer.pad_token_id, **options)


def row(engine: BatchEngine, text: str, **settings) -> Row:
    return Row(prompt_ids=engine.tokenizer(text)["input_ids"], **settings)


def test_a_short_row_is_answered_while_a_full_batch_of_long_rows_decodes(random_model_dir, monkeypatch):
    monkeypatch.setattr(decode_loop, "PREEMPT_AFTER", 8)
    engine = make_engine(random_model_dir, max_batch_size=3)
    longs = [row(engine, f"long {i}", max_tokens=300, temperature=0.8, seed=i) for i in range(3)]
    finished: list[str] = []

    async def until_full_and_past(tokens):
        """Until the batch holds all three long rows, each with at least `tokens` decoded (a fixed
        sleep raced the decode: on a fast machine the long rows could all but end first)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = engine._running  # the decode thread's batch (a snapshot is enough here)
            if running is not None and len(running.rows) == 3 and min(len(r.tokens) for r in running.rows) >= tokens:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the long rows never filled the batch")

    async def go(with_short):
        async def named(name, r):
            result = await engine.generate(r)
            finished.append(name)
            return result

        running = [asyncio.ensure_future(named(f"long{i}", r)) for i, r in enumerate(longs)]
        short = None
        if with_short:
            await until_full_and_past(8)  # every long row may step aside: the short one must not wait
            short = await named("short", row(engine, "short", max_tokens=4))
        return short, await asyncio.gather(*running)

    try:
        _, alone = asyncio.run(go(with_short=False))
        assert engine.preemptions == 0  # nobody waited
        finished.clear()
        short, taking_turns = asyncio.run(go(with_short=True))
    finally:
        asyncio.run(engine.close())
    assert finished[0] == "short"  # it did not wait for a long row to end
    assert engine.preemptions >= 1
    assert short.completion_tokens == 4
    # the rows that stepped aside went on as if never paused
    assert [c.text for c in taking_turns] == [c.text for c in alone]
    assert max(c.completion_tokens for c in alone) == 300


def test_a_paused_row_goes_on_with_the_same_tokens(random_model_dir, monkeypatch):
    """Greedy and seeded rows give the same text whether or not they stepped aside."""
    engine = make_engine(random_model_dir, max_batch_size=1)
    rows = [row(engine, "first question", max_tokens=40), row(engine, "second", max_tokens=40, temperature=1.0, seed=3)]

    async def one_by_one():
        return [await engine.generate(r) for r in rows]

    async def together():
        return await asyncio.gather(*(engine.generate(r) for r in rows))

    try:
        alone = asyncio.run(one_by_one())
        monkeypatch.setattr(decode_loop, "PREEMPT_AFTER", 5)
        taking_turns = asyncio.run(together())
    finally:
        asyncio.run(engine.close())
    assert engine.preemptions >= 1
    assert [c.text for c in taking_turns] == [c.text for c in alone]


def test_a_caller_that_gives_up_leaves_the_batch_at_the_next_step(random_model_dir):
    engine = make_engine(random_model_dir, max_batch_size=4)

    def rows_decoding():
        running = engine._running  # the decode thread's batch (a snapshot is enough here)
        return 0 if running is None else len(running.rows)

    async def until(condition):
        deadline = time.monotonic() + 5
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return condition()

    async def go():
        stays = asyncio.ensure_future(engine.generate(row(engine, "stays", max_tokens=300)))
        leaves = asyncio.ensure_future(engine.generate(row(engine, "leaves", max_tokens=100_000)))
        assert await until(lambda: rows_decoding() == 2)
        leaves.cancel()
        assert await until(lambda: rows_decoding() == 1)  # long before "stays" ends
        assert not stays.done()
        return await stays

    try:
        assert asyncio.run(go()).completion_tokens == 300
    finally:
        asyncio.run(engine.close())


def test_close_stops_a_long_decode_within_a_step(random_model_dir):
    engine = make_engine(random_model_dir)

    async def go():
        task = asyncio.ensure_future(engine.generate(row(engine, "long", max_tokens=100_000)))
        await asyncio.sleep(0.5)
        await engine.close()
        with pytest.raises(Exception, match="closed"):
            await task

    asyncio.run(go())
    started = time.monotonic()
    for thread in list(engine._executor._threads):
        thread.join(5)
        assert not thread.is_alive()
    assert time.monotonic() - started < 2
