"""The continuous-batching engine (llm/engine.py) on token ids: batching, rows joining and
leaving a running batch, per-row sampling and stops, the generate fallback.

A random model (no turn-ending training) is used so that rows run to their token limit."""

from __future__ import annotations

import asyncio

import pytest
import torch

from selfalign.llm.checkpoints import load_pretrained
from selfalign.llm.engine import BatchEngine, Row


def make_engine(model_dir, **options) -> BatchEngine:
    model, tokenizer = load_pretrained(str(model_dir), dtype=torch.float32)
    # A generous wait, so rows issued together surely land in one batch on a slow CI box.
    options.setdefault("batch_wait_ms", 50)
    return BatchEngine(
        model.eval(), tokenizer, eos_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id, **options
    )


@pytest.fixture(scope="module")
def engine(random_model_dir):
    e = make_engine(random_model_dir)
    yield e
    asyncio.run(e.close())


def row(engine: BatchEngine, text: str, **settings) -> Row:
    settings.setdefault("max_tokens", 8)
    return Row(prompt_ids=engine.tokenizer(text)["input_ids"], **settings)


def run(engine: BatchEngine, *rows: Row):
    """Issue the rows concurrently, as one event loop would, and return the completions."""

    async def go():
        return await asyncio.gather(*(engine.generate(r) for r in rows))

    return asyncio.run(go())


def test_rows_issued_together_share_one_prefill_and_stop_at_their_own_limits(engine):
    before = engine.generate_calls
    rows = [
        row(engine, "a", max_tokens=3),
        row(engine, "a longer prompt, so the batch is left-padded", temperature=0.8, top_p=0.9, seed=4, max_tokens=9),
        row(engine, "c", temperature=1.3, seed=7, max_tokens=6),
    ]
    done = run(engine, *rows)
    assert engine.generate_calls == before + 1
    assert [d.completion_tokens for d in done] == [3, 9, 6]
    assert all(d.finish_reason == "length" for d in done)
    assert [d.prompt_tokens for d in done] == [len(r.prompt_ids) for r in rows]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_row_gives_the_same_text_alone_or_in_any_batch(engine, temperature):
    target = row(engine, "the same question", temperature=temperature, top_p=0.95, seed=11, max_tokens=16)
    (alone,) = run(engine, target)
    others = [
        row(engine, "something much longer than the target, to shift its padding", temperature=0.7, seed=1, max_tokens=16),
        row(engine, "x", max_tokens=4),
        row(engine, "y", temperature=1.5, seed=2, max_tokens=20),
    ]
    batched = run(engine, others[0], target, others[1], others[2])[1]
    reordered = run(engine, others[2], target)[1]
    assert batched.text == alone.text == reordered.text
    assert batched.completion_tokens == alone.completion_tokens


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rows_join_a_running_batch_and_leave_it_when_done(engine, temperature):
    """Rows arriving while a long one decodes are admitted at once (one with a longer prompt,
    one shorter, so either side of the cache gets left-padded), answered as soon as they
    finish, and every text is what it would be alone."""
    long = row(engine, "the long one", temperature=temperature, seed=5, max_tokens=300)
    short = [
        row(engine, "a much longer prompt than the running row has, to pad the running cache", temperature=temperature, seed=1, max_tokens=6),
        row(engine, "s", temperature=temperature, seed=2, max_tokens=5, stop=("zz",)),
    ]
    alone = [run(engine, r)[0] for r in (long, *short)]
    assert alone[0].completion_tokens > 100, "the long row must outlive the short ones"

    async def go():
        calls = engine.generate_calls
        first = asyncio.ensure_future(engine.generate(long))
        while engine.generate_calls == calls:  # until the long row is prefilled and decoding
            await asyncio.sleep(0.001)
        done_short = await asyncio.gather(*(engine.generate(r) for r in short))
        still_running = not first.done()
        return [await first, *done_short], still_running, engine.generate_calls - calls

    together, still_running, calls = asyncio.run(go())
    assert still_running and calls == 2
    assert [d.text for d in together] == [d.text for d in alone]
    assert [d.completion_tokens for d in together] == [d.completion_tokens for d in alone]


def test_models_without_a_plain_cache_fall_back_to_generate(random_model_dir, engine):
    """A model whose cache our loop cannot slice (sliding windows...) runs one generate per batch."""
    assert engine.continuous  # the tiny Qwen2 model takes the continuous path
    fallback_engine = make_engine(random_model_dir)
    fallback_engine.continuous = False
    rows = [row(engine, "a", max_tokens=7), row(engine, "b", temperature=1.0, seed=3, max_tokens=9, stop=("zz",))]
    try:
        fallback = run(fallback_engine, *rows)
        assert fallback_engine.generate_calls == 1
    finally:
        asyncio.run(fallback_engine.close())
    assert [d.text for d in fallback] == [d.text for d in run(engine, *rows)]


def test_the_seed_picks_the_sample(engine):
    texts = [d.text for d in run(engine, *(row(engine, "q", temperature=1.0, seed=s, max_tokens=12) for s in (0, 1, 2)))]
    assert len(set(texts)) == 3
    assert run(engine, row(engine, "q", temperature=1.0, seed=1, max_tokens=12))[0].text == texts[1]


def test_stop_string_trims_the_text_and_finishes_with_stop(engine):
    (free,) = run(engine, row(engine, "tell me", max_tokens=24))
    stop = free.text[6:9]
    assert len(stop) == 3, "the random model's greedy text is long enough to cut"
    (cut,) = run(engine, row(engine, "tell me", max_tokens=24, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.completion_tokens < free.completion_tokens


def test_a_row_whose_caller_gave_up_leaves_the_batch(engine):
    async def go():
        calls = engine.generate_calls
        abandoned = asyncio.ensure_future(engine.generate(row(engine, "long", max_tokens=400)))
        while engine.generate_calls == calls:
            await asyncio.sleep(0.001)
        abandoned.cancel()
        return await engine.generate(row(engine, "next", max_tokens=3))

    assert asyncio.run(go()).completion_tokens == 3
    assert engine._running is None  # the abandoned row is gone, not decoding in the background


def test_event_loop_stays_free_while_generating(engine):
    async def go():
        ticks = 0
        task = asyncio.ensure_future(engine.generate(row(engine, "long", max_tokens=48)))
        while not task.done():
            await asyncio.sleep(0.001)
            ticks += 1
        return ticks

    assert asyncio.run(go()) > 1


def test_closed_engine_refuses_rows(random_model_dir):
    e = make_engine(random_model_dir)
    asyncio.run(e.close())
    with pytest.raises(Exception, match="closed"):
        run(e, Row(prompt_ids=[1, 2], max_tokens=2))


def test_forward_passes_run_without_cudnn_attention(random_model_dir):
    """cuDNN's attention builds a graph per new shape (benchmarks/decode_attention.py): every
    forward pass of the engine (prefill, decode step, generate fallback, a scoring job) runs
    with it off, and the setting is restored afterwards."""
    eng = make_engine(random_model_dir)
    seen: list[bool] = []
    forward = eng.model.forward

    def recording_forward(*args, **kwargs):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return forward(*args, **kwargs)

    eng.model.forward = recording_forward
    try:
        run(eng, row(eng, "a", max_tokens=4))
        eng.continuous = False
        run(eng, row(eng, "b", max_tokens=3))

        async def score():
            return await eng.run_exclusive(lambda: eng.model(input_ids=torch.tensor([[1, 2, 3]])))

        asyncio.run(score())
    finally:
        asyncio.run(eng.close())
    assert len(seen) >= 3 + 1 + 1 and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()
