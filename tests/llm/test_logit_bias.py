"""Per-call logit bias and n-gram penalties: the pure functions against hand-computed values,
then the `hf:` engine honouring them row by row (the decode loop and the `generate` fallback),
what `openai:` and `vllm:` send, and the model wrapper's word for a provider without them."""

from __future__ import annotations

import asyncio
import logging

import pytest
import torch

from selfalign.llm import Model
from selfalign.llm.decoding import adjust_row, ngram_penalty
from selfalign.llm.hf import HFProvider
from selfalign.llm.openai_wire import sampling_params
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import ChatRequest, Completion, Message, Sampling


def test_ngram_penalty_by_hand():
    # 5 6 7 5 6: 3-grams starting with the last two tokens (5 6): (5 6 7) once -> 7 loses 1.0
    assert ngram_penalty([5, 6, 7, 5, 6], [(3, 1.0)]) == {7: 1.0}
    # 4-grams starting with (6 7 5)... none: the only 4-grams are (5 6 7 5), (6 7 5 6)
    assert ngram_penalty([5, 6, 7, 5, 6], [(4, 2.0)]) == {}
    # 1 2 1 2 1: 3-grams starting with (2 1): (2 1 2) once -> 2 loses 1.0; 4-grams with (1 2 1): (1 2 1 2) -> 2 loses 2.0
    assert ngram_penalty([1, 2, 1, 2, 1], [(3, 1.0), (4, 2.0)]) == {2: 3.0}
    # n = 1: a frequency penalty, by count
    assert ngram_penalty([4, 4, 9], [(1, 0.5)]) == {4: 1.0, 9: 0.5}
    assert ngram_penalty([1, 2], [(3, 1.0)]) == {}  # fewer tokens than n
    scores = torch.zeros(2, 10)
    adjust_row(scores, 1, [5, 6, 7, 5, 6], [(3, -100.0), (7, 2.0)], [(3, 1.0)])
    assert scores[0].tolist() == [0.0] * 10
    assert scores[1, 3] == -100.0 and scores[1, 7] == pytest.approx(1.0) and scores[1].abs().sum() == pytest.approx(101.0)


def test_sampling_checks_its_new_fields():
    with pytest.raises(ValueError):
        Sampling(logit_bias={5: -101})
    with pytest.raises(ValueError):
        Sampling(ngram_penalties={0: 1.0})
    assert Sampling(ngram_penalties={3: 0.0}).ngram_penalties is None  # no penalty at all is none


@pytest.fixture(scope="module")
def provider(tiny_model_dir):
    p = HFProvider(str(tiny_model_dir), device="cpu", batch_wait_ms=50)
    yield p
    asyncio.run(p.close())


def complete(provider, *samplings):
    async def go():
        return await asyncio.gather(*(provider.complete(ChatRequest((Message(role="user", content="hello"),), s))
                                      for s in samplings))

    return asyncio.run(go())


@pytest.mark.parametrize("continuous", [True, False])
def test_hf_engine_applies_each_rows_own_bias_and_penalties(provider, continuous, monkeypatch):
    monkeypatch.setattr(provider.engine.decoder, "continuous", continuous)  # False: one generate() call a batch
    token = provider.tokenize(" cat")[0]
    plain, forced, varied = complete(
        provider,
        Sampling(temperature=0, max_tokens=6),
        Sampling(temperature=0, max_tokens=6, logit_bias={token: 100}),
        Sampling(temperature=0, max_tokens=12, ngram_penalties={1: 100.0}),  # no token twice
    )
    assert forced.text == provider.tokenizer.decode([token] * 6)
    assert plain.text != forced.text
    ids = provider.tokenize(varied.text)
    assert len(ids) == len(set(ids))


def test_openai_sends_the_apis_logit_bias_and_vllm_takes_it_too():
    assert sampling_params(Sampling(logit_bias={42: -100}))["logit_bias"] == {"42": -100}
    assert "logit_bias" not in sampling_params(Sampling())


class _Plain:
    """A provider that lists no optional sampling field."""

    name, constrained = "plain", False

    async def complete(self, request):
        return Completion(text="ok", prompt_tokens=1, completion_tokens=1, finish_reason="stop")

    async def close(self):
        pass


def test_a_provider_without_them_says_so_once_and_scripted_accepts_them(caplog):
    model = Model(_Plain())
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            asyncio.run(model.chat("hi", logit_bias={1: -100}, ngram_penalties={3: 1.0}))
    said = [r.getMessage() for r in caplog.records]
    assert said == ["plain does not support logit_bias: its calls are decoded without it",
                    "plain does not support ngram_penalties: its calls are decoded without it"]
    caplog.clear()
    scripted = Model(ScriptedProvider(lambda request: "fine"))
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(scripted.chat("hi", logit_bias={1: -100})).text == "fine"
    assert not caplog.records
    assert scripted.token_ids("hi") is None  # no tokenizer here
