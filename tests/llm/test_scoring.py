"""Log-likelihood scoring on `hf:` (llm/scoring.py): lm-evaluation-harness's tokenisation, the
batched forward passes against one sequence at a time without padding, and scoring while the
engine decodes."""

from __future__ import annotations

import asyncio

import pytest
import torch

from selfalign.llm import Model, ModelError
from selfalign.llm.hf import HFProvider
from selfalign.llm.scoring import ScoreRow, encode_pair, score_rows
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import ChatRequest, LoglikelihoodRequest, Message, Sampling

CONTEXT = "Q: Which planet is closest to the sun?\nA:"


@pytest.fixture(scope="module")
def provider(tiny_model_dir):
    p = HFProvider(str(tiny_model_dir), device="cpu", batch_wait_ms=50)
    yield p
    asyncio.run(p.close())


def reference(provider: HFProvider, row: ScoreRow) -> tuple[float, bool]:
    """One sequence alone, no padding, no mask, full logits: the plain definition."""
    ids = torch.tensor([row.context + row.continuation])
    with torch.inference_mode():
        logprobs = torch.log_softmax(provider.model(ids).logits[0].float(), dim=-1)
    start = len(row.context) - 1
    picked = [logprobs[start + k, t] for k, t in enumerate(row.continuation)]
    greedy = all(int(logprobs[start + k].argmax()) == t for k, t in enumerate(row.continuation))
    return float(sum(picked)), greedy


def test_encode_pair_moves_trailing_space_and_splits_the_whole(provider):
    tok = provider.tokenizer
    row = encode_pair(tok, "A: ", "Paris", prefix_id=0)
    assert row.context == tok("A:", add_special_tokens=False)["input_ids"]
    whole = tok("A: Paris", add_special_tokens=False)["input_ids"]
    assert row.context + row.continuation == whole
    assert tok.decode(row.continuation) == " Paris"


def test_encode_pair_empty_context_is_the_prefix_token(provider):
    tok = provider.tokenizer
    row = encode_pair(tok, "", " Paris", prefix_id=7)
    assert row.context == [7]
    assert row.continuation == tok(" Paris", add_special_tokens=False)["input_ids"]


def test_batched_scores_equal_one_sequence_at_a_time(provider):
    continuations = [" Mercury.", " Venus is closest to the sun, as everyone knows.", " No.", " The Earth"]
    contexts = [CONTEXT, "Q: What colour is the sky?\nA:", "Hello"]

    async def go():
        model = Model(provider)
        return await asyncio.gather(*(model.loglikelihood(c, continuations) for c in contexts))

    batches_before = provider._scorer.batches
    results = asyncio.run(go())
    assert provider._scorer.batches == batches_before + 1  # the three calls shared one scoring pass
    for context, scored in zip(contexts, results):
        for text, got in zip(continuations, scored):
            want_logprob, want_greedy = reference(provider, encode_pair(provider.tokenizer, context, text, 0))
            assert got.logprob == pytest.approx(want_logprob, abs=1e-4)
            assert got.is_greedy == want_greedy


def test_greedy_continuation_is_reported(provider):
    """The model's own greedy continuation is greedy; a changed last token is not."""
    row = encode_pair(provider.tokenizer, CONTEXT, " x", 0)
    ids = list(row.context)
    for _ in range(3):
        with torch.inference_mode():
            ids.append(int(provider.model(torch.tensor([ids])).logits[0, -1].argmax()))
    greedy_tokens = ids[len(row.context) :]
    with torch.inference_mode():
        rows = [ScoreRow(row.context, greedy_tokens), ScoreRow(row.context, greedy_tokens[:2] + [(greedy_tokens[2] + 1) % 100])]
        scored = score_rows(provider.model, rows, pad_id=0, max_length=512)
    assert [s.is_greedy for s in scored] == [True, False]


def test_padding_does_not_change_a_near_tie(provider):
    """The two closest-scoring of many choices keep their order, and every score its value
    within 1e-4 (float32 rounding), whether scored alone or in a pass padded around much longer and shorter rows."""
    tok = provider.tokenizer
    words = ["sun", "moon", "star", "rain", "snow", "wind", "tree", "rock", "sea", "sky", "fire", "ice"]
    choices = [f" The {a} and the {b}." for a in words for b in words if a != b]
    rows = [encode_pair(tok, CONTEXT, c, 0) for c in choices]
    alone = []
    with torch.inference_mode():
        for row in rows:
            alone.append(score_rows(provider.model, [row], pad_id=0, max_length=512)[0].logprob)
        filler = [encode_pair(tok, CONTEXT * k, " and so on" * k, 0) for k in (1, 3, 6)]
        filler += [ScoreRow([5], [6]), ScoreRow([5, 9], [7, 8])]
        padded = [r.logprob for r in score_rows(provider.model, filler + rows, pad_id=0, max_length=2048)[len(filler) :]]
    gaps = sorted((abs(alone[i] - alone[j]), i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)))
    gap, i, j = gaps[0]
    assert gap < 1e-2  # a near-tie among these choices
    assert (alone[i] > alone[j]) == (padded[i] > padded[j])
    assert max(abs(a - b) for a, b in zip(alone, padded)) < 1e-4  # float32 rounding of sums near -80


def test_scoring_while_the_engine_decodes(provider):
    """Scoring passes run between decoding steps: a long generation gives the same text with
    or without scoring calls arriving meanwhile, and the scores are those of a quiet engine."""
    request = ChatRequest((Message(role="user", content="Tell me a story"),), Sampling(temperature=0, max_tokens=64))
    quiet_text = asyncio.run(provider.complete(request)).text
    quiet_scores = asyncio.run(provider.loglikelihood(LoglikelihoodRequest(CONTEXT, (" Mercury.", " Venus."))))

    async def busy():
        generation = asyncio.ensure_future(provider.complete(request))
        await asyncio.sleep(0.05)
        scores = await asyncio.gather(*(provider.loglikelihood(LoglikelihoodRequest(CONTEXT, (" Mercury.", " Venus."))) for _ in range(4)))
        return (await generation).text, scores

    text, scores = asyncio.run(busy())
    assert text == quiet_text
    for s in scores:
        assert [r.logprob for r in s] == pytest.approx([r.logprob for r in quiet_scores], abs=1e-5)


def test_empty_continuation_is_a_clear_error(provider):
    with pytest.raises(Exception, match="no tokens"):
        asyncio.run(provider.loglikelihood(LoglikelihoodRequest(CONTEXT, ("",))))


def test_a_provider_that_cannot_score_says_so():
    model = Model(ScriptedProvider(lambda r: "x", name="scripted:x"))
    with pytest.raises(ModelError, match="cannot score continuations"):
        asyncio.run(model.loglikelihood("context", [" a"]))


def test_scores_are_cached():
    calls = []

    class Cache(dict):
        def get_call(self, key):
            return self.get(key)

        def put_call(self, key, value):
            self[key] = value

    class Scorer:
        name = "fake"
        constrained = False

        async def loglikelihood(self, request):
            calls.append(request)
            from selfalign.llm.types import Loglikelihood

            return [Loglikelihood(-float(len(c)), False) for c in request.continuations]

        async def complete(self, request):
            raise NotImplementedError

        async def close(self):
            pass

    model = Model(Scorer(), cache=Cache())
    first = asyncio.run(model.loglikelihood("ctx", [" a", " bb"]))
    again = asyncio.run(model.loglikelihood("ctx", [" a", " bb"]))
    assert first == again and [r.logprob for r in first] == [-2.0, -3.0]
    assert len(calls) == 1
