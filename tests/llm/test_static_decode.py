"""Decode steps at fixed shapes (llm/static_decode.py, `compile_decode`): the same texts as
today's steps while rows join, leave, step aside and outgrow their length bucket; and today's
path, with one log line, where a model or device cannot take them.

The default suite runs the fixed-shape steps as they are ("eager"); torch.compile on a CPU
takes a minute or more, so the compiled run is marked slow. CUDA graphs need a GPU: their test
is skipped without one (benchmarks/decode_attention.py and hf_batching.py --compile-decode time
them there)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

import pytest
import torch
from pydantic import BaseModel, Field

from selfalign.errors import UserError
from selfalign.llm.checkpoints import load_pretrained
from selfalign.llm.engine import BatchEngine, Row
from selfalign.llm.hf import HFProvider
from selfalign.llm.static_decode import MIN_WIDTH, bucket
from selfalign.llm.types import ChatRequest, Message, Sampling

FALLBACK = "decoding on today's path"


class Note(BaseModel):
    """Every string bounded, so a weak model's JSON ends."""

    kind: Literal["fact", "rule"]
    text: Annotated[str, Field(max_length=24)]


def requests() -> list[ChatRequest]:
    """Greedy and sampled rows of different prompt and answer lengths, a JSON row, a stop string."""

    def ask(text: str, schema: dict | None = None, **sampling) -> ChatRequest:
        return ChatRequest((Message(role="user", content=text),), Sampling(**sampling), schema)

    return [
        ask("Tell me about the city and its people.", temperature=0, max_tokens=90),
        ask("a", temperature=0, max_tokens=12),
        ask("What do neighbours share? " * 6, temperature=1.0, seed=3, max_tokens=70),
        ask("Write a note.", Note.model_json_schema(), temperature=0, max_tokens=40),
        ask("Rules of the school", temperature=0.8, seed=9, max_tokens=60, stop=["e "]),
        ask("Why be kind?", temperature=0, max_tokens=50),
    ]


async def staggered(provider: HFProvider, batch: list[ChatRequest]):
    """Each request sent once the one before it was prefilled: rows join a running batch one
    by one, at different lengths."""
    engine, tasks = provider.engine, []
    for request in batch:
        calls = engine.generate_calls
        tasks.append(asyncio.ensure_future(provider.complete(request)))
        while engine.generate_calls == calls and not tasks[-1].done():
            await asyncio.sleep(0.001)
    return await asyncio.gather(*tasks)


def answers(model_dir, mode: str, device: str = "cpu"):
    # max_batch_size 3: with six requests, rows also step aside and rejoin (decode_loop.PREEMPT_AFTER)
    provider = HFProvider(str(model_dir), device=device, max_batch_size=3, compile_decode=mode)
    static = provider.engine.decoder.static
    try:
        done = asyncio.run(staggered(provider, requests()))
        return [(d.text, d.finish_reason, d.completion_tokens) for d in done], static
    finally:
        asyncio.run(provider.close())


@pytest.fixture(scope="module")
def todays(tiny_model_dir, random_model_dir):
    """Today's answers on the tiny model (which ends its turns) and the random one (whose rows
    run to their limits, past the first length bucket)."""
    out = {}
    for name, model_dir in (("tiny", tiny_model_dir), ("random", random_model_dir)):
        out[name], static = answers(model_dir, "off")
        assert static is None
    return out


@pytest.mark.parametrize("model", ["tiny", "random"])
def test_fixed_shape_steps_give_todays_texts_as_rows_join_and_leave(request, todays, caplog, model):
    with caplog.at_level(logging.WARNING, logger="selfalign.llm.static_decode"):
        done, static = answers(request.getfixturevalue(f"{model}_model_dir"), "eager")
    assert static.failed is None and FALLBACK not in caplog.text
    assert done == todays[model]
    assert any(reason == "stop" for _, reason, _ in done)
    assert static.steps > 40 and static.relayouts >= 6  # laid out again as rows came and went
    if model == "random":  # the longest rows outgrew the first length bucket
        assert len({width for _, width in static.buckets_used}) >= 2
        assert {rows for rows, _ in static.buckets_used} >= {1, 2, 4}


@pytest.mark.slow
def test_compiled_steps_give_todays_texts(random_model_dir, todays):
    """torch.compile on a CPU: inductor's C++ code, one compilation per bucket (minutes)."""
    done, static = answers(random_model_dir, "compile")
    assert static.failed is None and static.steps > 100
    assert done == todays["random"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graphs_give_todays_texts(random_model_dir):
    """On a GPU (float32, the tiny model's own dtype): one graph per bucket, the texts of today's steps."""
    expected, _ = answers(random_model_dir, "off", device="cuda")
    done, static = answers(random_model_dir, "graphs", device="cuda")
    assert static.failed is None and static.steps > 100
    assert done == expected


def test_buckets_are_powers_of_two():
    assert [bucket(n) for n in (1, 2, 3, 5, 8, 9, 32)] == [1, 2, 4, 8, 8, 16, 32]
    assert [bucket(n, MIN_WIDTH) for n in (1, 64, 65, 200)] == [MIN_WIDTH, 64, 128, 256]


# -- where it cannot run: today's path, one log line ---------------------------------------


def engine_on(model, tokenizer, mode: str) -> BatchEngine:
    return BatchEngine(model, tokenizer, eos_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
                       batch_wait_ms=50, compile_decode=mode)


def texts(engine: BatchEngine, tokenizer) -> list[str]:
    rows = [Row(tokenizer(t)["input_ids"], max_tokens=m, temperature=temp, seed=1)
            for t, m, temp in (("one", 9, 0.0), ("a longer prompt for padding", 14, 1.0))]

    async def go():
        return await asyncio.gather(*(engine.generate(r) for r in rows))

    try:
        return [d.text for d in asyncio.run(go())]
    finally:
        asyncio.run(engine.close())


def bloom(tokenizer):
    """A tiny BLOOM: attention biased by ALiBi slopes built from the 2-D mask, which fixed-shape
    steps do not give it."""
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return BloomForCausalLM(config).eval()


def sliding_qwen2(tokenizer):
    """A tiny Qwen2 whose layers attend through a sliding window (a cache of another kind)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True, sliding_window=8,
                         max_window_layers=0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return Qwen2ForCausalLM(config).eval()


@pytest.mark.parametrize(
    ("build", "reason"),
    [(bloom, "a step failed"), (sliding_qwen2, "not a plain DynamicCache")],
    ids=["alibi", "sliding-window"],
)
def test_a_model_it_cannot_handle_decodes_as_today_with_one_log_line(random_model_dir, caplog, build, reason):
    _, tokenizer = load_pretrained(str(random_model_dir), dtype=torch.float32)
    model = build(tokenizer)
    expected = texts(engine_on(model, tokenizer, "off"), tokenizer)
    with caplog.at_level(logging.WARNING, logger="selfalign.llm.static_decode"):
        engine = engine_on(model, tokenizer, "eager")
        got = texts(engine, tokenizer)
    assert got == expected
    lines = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(lines) == 1 and reason in lines[0]


def test_cuda_graphs_without_a_gpu_decode_as_today_with_one_log_line(random_model_dir, caplog):
    model, tokenizer = load_pretrained(str(random_model_dir), dtype=torch.float32)
    expected = texts(engine_on(model, tokenizer, "off"), tokenizer)
    with caplog.at_level(logging.WARNING, logger="selfalign.llm.static_decode"):
        engine = engine_on(model, tokenizer, "graphs")
        assert engine.decoder.static is None
        assert texts(engine, tokenizer) == expected
    assert "CUDA graphs need a CUDA device" in caplog.text and caplog.text.count(FALLBACK) == 1


def test_a_step_that_fails_midway_hands_the_batch_back_to_todays_path(random_model_dir, caplog):
    """A compile or capture error on a later bucket: the step is redone on today's path from
    the cache as it was, and the texts are unchanged."""
    model, tokenizer = load_pretrained(str(random_model_dir), dtype=torch.float32)
    expected = texts(engine_on(model, tokenizer, "off"), tokenizer)
    engine = engine_on(model, tokenizer, "eager")
    static = engine.decoder.static
    forward, calls = static._forward, []

    def fails_on_the_fifth_step(*args):
        calls.append(1)
        if len(calls) == 1 + 5:  # the start-up check runs the first
            raise RuntimeError("no kernel for this shape")
        return forward(*args)

    static._forward = fails_on_the_fifth_step
    with caplog.at_level(logging.WARNING, logger="selfalign.llm.static_decode"):
        assert texts(engine, tokenizer) == expected
    assert static.failed and "no kernel for this shape" in static.failed
    assert caplog.text.count(FALLBACK) == 1


def test_an_unknown_mode_is_refused(tiny_model_dir):
    with pytest.raises(UserError, match="graphs"):
        HFProvider(str(tiny_model_dir), device="cpu", compile_decode="fast")
