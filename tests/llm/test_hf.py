"""The `hf:` provider on the tiny random model: batching, per-row sampling, stops, schemas."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import pytest
import torch
from pydantic import BaseModel, Field

from selfalign.errors import UserError
from selfalign.llm import Model, load_provider
from selfalign.llm.decoding import gumbel_noise, gumbel_rows, top_p_filter, top_p_rows
from selfalign.llm.hf import HFProvider
from selfalign.llm.types import ChatRequest, Message, Sampling


class Profile(BaseModel):
    """Every string bounded: a random model fills unbounded strings until max_tokens."""

    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    kind: Literal["cat", "dog", "fish"]
    tags: list[Annotated[str, Field(max_length=6)]] = Field(max_length=3)


@pytest.fixture(scope="module")
def provider(tiny_model_dir):
    # A generous wait, so requests issued together surely land in one batch on a slow CI box.
    p = HFProvider(str(tiny_model_dir), device="cpu", batch_wait_ms=50)
    yield p
    asyncio.run(p.close())


def ask(text: str, schema: dict | None = None, **sampling) -> ChatRequest:
    sampling.setdefault("max_tokens", 8)
    return ChatRequest((Message(role="user", content=text),), Sampling(**sampling), schema)


def run(provider: HFProvider, *requests: ChatRequest):
    """Issue the requests concurrently, as one event loop would, and return the completions."""

    async def go():
        return await asyncio.gather(*(provider.complete(r) for r in requests))

    return asyncio.run(go())


def test_completion_reports_tokens_and_finish(provider):
    request = ask("hello there", temperature=0, max_tokens=5)
    (done,) = run(provider, request)
    template = provider.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello there"}], add_generation_prompt=True, tokenize=False
    )
    assert done.prompt_tokens == len(provider.tokenizer(template, add_special_tokens=False)["input_ids"])
    assert done.completion_tokens == 5
    assert done.finish_reason == "length"
    assert isinstance(done.text, str)


def test_spec_builds_the_provider(tiny_model_dir):
    p = load_provider(f"hf:{tiny_model_dir}", device="cpu")
    assert isinstance(p, HFProvider)
    assert p.name == f"hf:{tiny_model_dir}" and p.constrained


def test_concurrent_requests_share_one_generate_call(provider):
    before = provider.generate_calls
    requests = [
        ask("a", temperature=0, max_tokens=3),
        ask("a longer prompt, so the batch is left-padded", temperature=0.8, top_p=0.9, seed=4, max_tokens=9),
        ask("c", temperature=1.3, seed=7, max_tokens=6),
        ask("d", schema=Profile.model_json_schema(), temperature=0, max_tokens=60),
    ]
    done = run(provider, *requests)
    assert provider.generate_calls == before + 1
    # Each row is cut at its own max_tokens, although the batch ran to the longest.
    assert [d.completion_tokens for d in done[:3]] == [3, 9, 6]
    assert all(d.finish_reason == "length" for d in done[:3])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_request_gives_the_same_text_alone_or_in_any_batch(provider, temperature):
    target = ask("the same question", temperature=temperature, top_p=0.95, seed=11, max_tokens=16)
    (alone,) = run(provider, target)
    others = [
        ask("something much longer than the target, to shift its padding", temperature=0.7, seed=1, max_tokens=16),
        ask("x", temperature=0, max_tokens=4),
        ask("y", temperature=1.5, seed=2, max_tokens=20),
    ]
    batched = run(provider, others[0], target, others[1], others[2])[1]
    reordered = run(provider, others[2], target)[1]
    assert batched.text == alone.text == reordered.text
    assert batched.completion_tokens == alone.completion_tokens


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_requests_join_a_running_batch_and_leave_it_when_done(provider, temperature):
    """Continuous batching: requests arriving while a long one decodes are admitted at once
    (one with a longer prompt, one shorter, so either side of the cache gets left-padded),
    answered as soon as they finish, and every text is what it would be alone."""
    long = ask("the long one", temperature=temperature, seed=5, max_tokens=300)
    short = [
        ask("a much longer prompt than the running row has, to pad the running cache", temperature=temperature, seed=1, max_tokens=6),
        ask("s", temperature=temperature, seed=2, max_tokens=5, stop=("zz",)),
        ask("json", schema=Profile.model_json_schema(), temperature=temperature, seed=3, max_tokens=120),
    ]
    alone = [run(provider, r)[0] for r in (long, *short)]
    assert alone[0].completion_tokens > 100, "the long row must outlive the short ones"

    async def go():
        calls = provider.generate_calls
        first = asyncio.ensure_future(provider.complete(long))
        while provider.generate_calls == calls:  # until the long row is prefilled and decoding
            await asyncio.sleep(0.001)
        done_short = await asyncio.gather(*(provider.complete(r) for r in short))
        still_running = not first.done()
        return [await first, *done_short], still_running, provider.generate_calls - calls

    together, still_running, calls = asyncio.run(go())
    assert still_running and calls == 2
    assert [d.text for d in together] == [d.text for d in alone]
    assert [d.completion_tokens for d in together] == [d.completion_tokens for d in alone]
    Profile.model_validate_json(together[-1].text)


def test_models_without_a_plain_cache_fall_back_to_generate(tiny_model_dir, provider):
    """A model whose cache our loop cannot slice (sliding windows...) runs one generate per batch."""
    assert provider._continuous  # the tiny Qwen2 model takes the continuous path
    p = HFProvider(str(tiny_model_dir), device="cpu", batch_wait_ms=50)
    p._continuous = False
    requests = [ask("a", temperature=0, max_tokens=7), ask("b", temperature=1.0, seed=3, max_tokens=9, stop=("zz",))]
    try:
        fallback = run(p, *requests)
        assert p.generate_calls == 1
    finally:
        asyncio.run(p.close())
    assert [d.text for d in fallback] == [d.text for d in run(provider, *requests)]


def test_seed_picks_the_sample_and_no_seed_means_seed_0(provider):
    texts = [d.text for d in run(provider, *(ask("q", temperature=1.0, seed=s, max_tokens=12) for s in (0, 1, 2)))]
    assert len(set(texts)) == 3
    (unseeded,) = run(provider, ask("q", temperature=1.0, max_tokens=12))
    assert unseeded.text == texts[0]


def test_stop_string_trims_the_text_and_finishes_with_stop(provider):
    (free,) = run(provider, ask("tell me", temperature=0, max_tokens=24))
    stop = free.text[6:9]
    assert len(stop) == 3, "the tiny model's greedy text is long enough to cut"
    (cut,) = run(provider, ask("tell me", temperature=0, max_tokens=24, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.completion_tokens < free.completion_tokens


def test_schema_output_is_valid_for_greedy_and_sampled_rows(provider):
    schema = Profile.model_json_schema()
    requests = [ask(f"profile {i}", schema=schema, temperature=t, seed=i, max_tokens=120) for i in range(4) for t in (0.0, 1.0)]
    requests.append(ask("free text in the same batch", temperature=1.0, max_tokens=10))
    done = run(provider, *requests)
    for d in done[:-1]:
        assert d.finish_reason == "stop", d.text  # EOS, forced once the object was complete
        Profile.model_validate_json(d.text)
    assert done[-1].completion_tokens == 10


def test_model_wrapper_parses_schema_output(provider):
    async def go():
        return await Model(provider).chat("who are you?", schema=Profile, temperature=0.9, seed=3, max_tokens=120)

    result = asyncio.run(go())
    assert isinstance(result.parsed, Profile) and result.attempts == 1


def test_event_loop_stays_free_while_generating(provider):
    async def go():
        ticks = 0
        task = asyncio.ensure_future(provider.complete(ask("long", temperature=0, max_tokens=48)))
        while not task.done():
            await asyncio.sleep(0.001)
            ticks += 1
        return ticks

    assert asyncio.run(go()) > 1


def test_missing_path_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="(?s)no such local directory.*network access"):
        HFProvider(str(tmp_path / "nope"), device="cpu")


def test_closed_provider_refuses_calls(tiny_model_dir):
    p = HFProvider(str(tiny_model_dir), device="cpu")
    asyncio.run(p.close())
    with pytest.raises(Exception, match="closed"):
        run(p, ask("hi"))


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = torch.isfinite(top_p_filter(logits, 0.75))
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [True, False, False, False]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_gumbel_noise_depends_only_on_seed_and_step():
    a = gumbel_noise(64, seed=5, step=3, device=torch.device("cpu"))
    assert torch.equal(a, gumbel_noise(64, seed=5, step=3, device=torch.device("cpu")))
    assert not torch.equal(a, gumbel_noise(64, seed=5, step=4, device=torch.device("cpu")))
    assert not torch.equal(a, gumbel_noise(64, seed=6, step=3, device=torch.device("cpu")))
    assert torch.isfinite(a).all()


def test_gumbel_rows_give_each_row_its_own_noise_in_any_batch():
    cpu = torch.device("cpu")
    rows = gumbel_rows(5000, seeds=[5, 6, 5], steps=[3, 3, 4], device=cpu)
    for k, (seed, step) in enumerate([(5, 3), (6, 3), (5, 4)]):
        assert torch.equal(rows[k], gumbel_noise(5000, seed=seed, step=step, device=cpu))
    # Standard Gumbel: mean = Euler's gamma, variance = pi^2 / 6.
    assert abs(rows.mean().item() - 0.5772) < 0.05 and abs(rows.var().item() - 1.6449) < 0.1


def test_top_p_rows_matches_the_single_row_filter():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    ps = [0.3, 0.9, 0.99]
    batched = top_p_rows(logits, torch.tensor(ps))
    for k, p in enumerate(ps):
        assert torch.equal(batched[k], top_p_filter(logits[k], p))
