"""`POST /v1/completions` (prompt scoring) on the tiny model, driven by the official openai
client, and the `openai:` provider's log-likelihoods through it: the same numbers as `hf:`."""

import asyncio
import json

import httpx
import openai
import pytest
import torch

from selfalign.llm import Model, ModelError, load_model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.serve import app_for_model, create_app

CONTEXT = "Q: Which planet is closest to the sun?\nA:"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model = load_model(f"hf:{tiny_model_dir}", device="cpu")
    yield model
    asyncio.run(model.close())


@pytest.fixture
def server(serve, tiny):
    # The app must not close the shared model when the test's server stops.
    return serve(app_for_model(tiny, "tiny", on_shutdown=None))


def reference(model: Model, ids: list[int]) -> torch.Tensor:
    """log_softmax at every position of one unpadded sequence."""
    with torch.inference_mode():
        return torch.log_softmax(model.provider.model(torch.tensor([ids])).logits[0].float(), dim=-1)


def test_echo_logprobs_of_text_and_token_prompts(server, client_for, tiny):
    client = client_for(server)
    ids = tiny.provider.tokenizer("The cat sat on the mat")["input_ids"]
    reply = client.completions.create(model="tiny", prompt=[ids, ids[:3]], max_tokens=1, echo=True, logprobs=2, temperature=0)
    assert [c.index for c in reply.choices] == [0, 1]
    want = reference(tiny, ids)
    lp = reply.choices[0].logprobs
    assert len(lp.tokens) == len(ids) + 1  # the prompt, then the greedy next token
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    for i in range(1, len(ids)):
        assert lp.token_logprobs[i] == pytest.approx(float(want[i - 1, ids[i]]), abs=1e-4)
        assert max(lp.top_logprobs[i].values()) == pytest.approx(float(want[i - 1].max()), abs=1e-4)
        assert len(lp.top_logprobs[i]) <= 2
    assert lp.token_logprobs[-1] == pytest.approx(float(want[-1].max()), abs=1e-4)  # greedy
    assert reply.usage.prompt_tokens == len(ids) + 3 and reply.usage.completion_tokens == 2
    text = client.completions.create(model="tiny", prompt="The cat", max_tokens=0, echo=True, logprobs=0)
    assert text.choices[0].text == "The cat" and text.usage.completion_tokens == 0
    assert len(text.choices[0].logprobs.tokens) == len(tiny.provider.tokenizer("The cat")["input_ids"])
    bare = client.completions.create(model="tiny", prompt="The cat", max_tokens=1)
    assert bare.choices[0].logprobs is None and bare.choices[0].text  # the next token alone, no echo


@pytest.mark.parametrize(
    "body, words",
    [
        ({"prompt": "hi", "max_tokens": 16}, "max_tokens 0, or 1"),
        ({"prompt": []}, "at least one prompt"),
        ({"prompt": ["a", [1, 2]]}, "must be a string, a list of strings"),
        ({"prompt": [[1, 2], []]}, "empty prompt"),
        ({"prompt": [10**9]}, "outside this model's vocabulary"),
        ({"prompt": [-1]}, "outside this model's vocabulary"),
        ({"prompt": "hi", "logprobs": 21}, "less than or equal to 20"),
        ({"prompt": "hi", "stream": True}, "stream is not supported"),
        ({"prompt": "hi", "n": 2}, "only n=1"),
        ({"prompt": "hi", "max_tokens": 1, "temperature": 0.7}, "greedy next token only"),
        ({"prompt": "hi " * 5000}, "reads at most"),
        ({"prompt": "\ud800"}, "lone UTF-16 surrogate"),
    ],
)
def test_bad_completion_requests_are_400s_that_say_why(server, body, words):
    content = json.dumps({"model": "tiny", **body})  # ASCII, so a lone surrogate travels as \\ud800
    reply = httpx.post(server.url + "/v1/completions", content=content, headers={"content-type": "application/json"}, timeout=60)
    assert reply.status_code == 400, reply.text
    assert words in reply.json()["error"]["message"]


def test_unknown_model_is_a_404(server):
    reply = httpx.post(server.url + "/v1/completions", json={"model": "gpt-9", "prompt": "hi"}, timeout=60)
    assert reply.status_code == 404


def test_a_model_that_cannot_score_prompts_says_so(serve, client_for):
    client = client_for(serve(app_for_model(Model(ScriptedProvider(lambda r: "x")), "echo")))
    with pytest.raises(openai.BadRequestError, match="cannot score prompts"):
        client.completions.create(model="echo", prompt="hi", max_tokens=1, echo=True, logprobs=1)


def test_openai_scorer_through_our_server_equals_hf(server, tiny):
    """`openai:` log-likelihoods (echo + logprobs, lm-eval's split) equal the hf: provider's."""
    continuations = [" Mercury.", " Venus is closest.", " No"]
    remote = load_model(f"openai:tiny@{server.url}/v1")

    async def go():
        try:
            return await remote.loglikelihood(CONTEXT, continuations), await tiny.loglikelihood(CONTEXT, continuations)
        finally:
            await remote.close()

    theirs, ours = asyncio.run(go())
    assert [r.logprob for r in theirs] == pytest.approx([r.logprob for r in ours], abs=1e-4)
    assert [r.is_greedy for r in theirs] == [r.is_greedy for r in ours]


def _fake_server(serve, route):
    """A FastAPI app standing in for servers whose /v1/completions cannot score prompts."""
    import fastapi

    app = fastapi.FastAPI()
    app.post("/v1/completions")(route)
    return serve(app)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("no_logprobs", "without prompt log-probabilities"),
        ("refuses", "refused /v1/completions with echo and logprobs"),
        ("missing", "has no /v1/completions"),
    ],
)
def test_openai_scorer_names_the_server_limitation(serve, kind, words):
    from fastapi.responses import JSONResponse

    async def route(body: dict):
        if kind == "refuses":
            return JSONResponse({"error": {"message": "echo is not supported with logprobs"}}, status_code=400)
        if kind == "missing":
            return JSONResponse({"error": {"message": "model does not support completions"}}, status_code=404)
        n = len(body["prompt"])
        choices = [{"index": i, "text": "x", "finish_reason": "length", "logprobs": None} for i in range(n)]
        return {"id": "c", "object": "text_completion", "created": 0, "model": "m", "choices": choices}

    server = _fake_server(serve, route)
    model = load_model(f"openai:m@{server.url}/v1")
    with pytest.raises(ModelError, match=words):
        asyncio.run(model.loglikelihood(CONTEXT, [" a"]))
