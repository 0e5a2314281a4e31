"""The `openai:` provider against a real HTTP server: selfalign's own `serve`."""

import asyncio
import itertools
import json
import logging
import socket

import pytest
from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.llm import Model, ModelError, RetryPolicy, TransientError, load_model
from selfalign.llm.openai_compat import OpenAIProvider
from selfalign.llm.openai_wire import chat_completion
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import ChatRequest, Message, Sampling
from selfalign.serve import app_for_model, create_app

SECRET = "sk-test-DO-NOT-LEAK-1234567890"
FAST = RetryPolicy(max_retries=10, backoff_base=0.01, backoff_max=0.05)


def backend(reply=lambda req: "pong: " + req.messages[-1].content):
    """A ScriptedProvider behind `selfalign serve`, and the app."""
    provider = ScriptedProvider(reply)
    return provider, app_for_model(Model(provider), "backend")


def fail_every(app, nth, status, counter=None):
    """Make every `nth` chat request fail with `status` before it reaches the model."""
    from fastapi.responses import JSONResponse

    counter = counter if counter is not None else itertools.count(1)

    @app.middleware("http")
    async def flaky(request, call_next):
        if request.url.path.endswith("/chat/completions") and next(counter) % nth == 0:
            return JSONResponse({"error": {"message": f"injected {status}", "type": "x"}}, status_code=status)
        return await call_next(request)

    return app


def test_chat_through_a_real_server(serve):
    provider, app = backend()
    server = serve(app)
    model = load_model(f"openai:backend@{server.url}/v1", retry=FAST)
    assert model.name == f"openai:backend@{server.url}/v1"
    sampling = Sampling(temperature=0.3, top_p=0.8, max_tokens=21, stop=("STOP", "END"), seed=5)

    async def go():
        try:
            return await model.chat([{"role": "system", "content": "s"}, {"role": "user", "content": "ping"}], sampling=sampling)
        finally:
            await model.close()

    result = asyncio.run(go())
    assert result.text == "pong: ping" and result.finish_reason == "stop"
    assert (result.prompt_tokens, result.completion_tokens) == (2, 2)
    seen = provider.requests[-1]
    assert seen.sampling == sampling  # every setting crossed the wire
    assert [(m.role, m.content) for m in seen.messages] == [("system", "s"), ("user", "ping")]


class Verdict(BaseModel):
    feasible: bool
    reason: str


def test_schema_goes_as_response_format(serve):
    provider, app = backend(lambda req: {"feasible": True, "reason": "fine"})
    server = serve(app)
    model = load_model(f"openai:backend@{server.url}/v1", retry=FAST)
    assert model.provider.constrained
    result = asyncio.run(model.chat("judge this", schema=Verdict))
    assert result.parsed == Verdict(feasible=True, reason="fine")
    seen = provider.requests[-1]
    assert seen.json_schema == Verdict.model_json_schema()
    # the schema travelled as response_format; the server (not this provider) decides how to
    # enforce it, and the scripted backend cannot, so the server put it in the prompt
    assert seen.messages[-1].content.startswith("judge this\n\nReply with a single JSON object")


def test_request_params(monkeypatch):
    provider = OpenAIProvider("m", base_url="http://h/v1", api_key="k")
    req = ChatRequest((Message(role="user", content="x"),), Sampling(seed=3), {"title": "My Thing!", "type": "object"})
    schema = {"title": "My Thing!", "type": "object"}
    params = provider._params(req, "json_schema")
    assert params["seed"] == 3 and "stop" not in params and params["max_tokens"] == 512
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "My_Thing_", "schema": schema, "strict": False},
    }
    assert provider._params(req, "json_object")["response_format"] == {"type": "json_object", "schema": schema}
    assert provider._params(req, "structured_outputs")["extra_body"] == {
        "structured_outputs": {"json": schema, "disable_any_whitespace": True}
    }
    bare = provider._params(req, "none")
    assert "response_format" not in bare and "extra_body" not in bare


@pytest.mark.parametrize("status", [503, 429, 500, 502, 504])
def test_flaky_server_every_third_request_fails_and_all_calls_succeed(serve, status):
    provider, app = backend()
    server = serve(fail_every(app, 3, status))
    model = load_model(f"openai:backend@{server.url}/v1", retry=FAST)

    async def go():
        try:
            return await asyncio.gather(*(model.chat(f"q{i}") for i in range(30)))
        finally:
            await model.close()

    results = asyncio.run(go())
    assert [r.text for r in results] == [f"pong: q{i}" for i in range(30)]
    assert model.stats.retries > 0 and model.stats.failures == 0
    assert model.stats.calls == 30 and len(provider.requests) == 30


def test_400_is_not_retried_and_carries_the_server_message(serve):
    provider, app = backend()
    counter = itertools.count(1)
    server = serve(fail_every(app, 1, 400, counter))
    model = load_model(f"openai:backend@{server.url}/v1", retry=FAST)
    with pytest.raises(ModelError, match="HTTP 400: injected 400") as info:
        asyncio.run(model.chat("x"))
    assert not isinstance(info.value, TransientError)
    assert model.stats.retries == 0 and next(counter) == 2  # one request reached the server


def test_wrong_base_url_is_a_model_error_with_the_servers_words(serve):
    _, app = backend()
    server = serve(app)
    provider = OpenAIProvider("backend", base_url=server.url + "/nope")
    request = ChatRequest((Message(role="user", content="x"),), Sampling())
    with pytest.raises(ModelError, match="HTTP 404: Not Found") as info:
        asyncio.run(provider.complete(request))
    assert not isinstance(info.value, TransientError)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_and_timeout_are_transient(serve):
    refused = OpenAIProvider("m", base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    request = ChatRequest((Message(role="user", content="x"),), Sampling())
    with pytest.raises(TransientError, match="cannot connect"):
        asyncio.run(refused.complete(request))

    async def slow(messages, sampling, json_schema):
        await asyncio.sleep(0.6)

    server = serve(create_app(slow, "slow"))
    impatient = OpenAIProvider("slow", base_url=server.url + "/v1", timeout=0.2)
    with pytest.raises(TransientError, match="no answer within 0.2s"):
        asyncio.run(impatient.complete(request))


def test_provider_survives_several_event_loops(serve):
    _, app = backend()
    server = serve(app)
    model = load_model(f"openai:backend@{server.url}/v1", retry=FAST)
    assert asyncio.run(model.chat("one")).text == "pong: one"
    assert asyncio.run(model.chat("two")).text == "pong: two"  # a new loop, a new connection pool


def test_missing_usage_counts_as_zero():
    from openai.types.chat import ChatCompletion

    response = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
        }
    )
    completion = chat_completion("openai:m@u", response)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("hi", 0, 0)
    assert completion.finish_reason == "length"
    with pytest.raises(ModelError, match="no choices"):
        chat_completion("openai:m@u", response.model_copy(update={"choices": []}))


def test_key_and_url_from_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIProvider("m", base_url="http://localhost:8000/v1/")._api_key == "EMPTY"
    assert OpenAIProvider("m", base_url="http://localhost:8000/v1/").name == "openai:m@http://localhost:8000/v1"
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1")
    provider = load_model("openai:llama3").provider
    assert provider.name == "openai:llama3@http://example.invalid/v1" and provider._api_key == SECRET
    assert OpenAIProvider("m", api_key="other")._api_key == "other"


def test_api_key_never_in_logs_errors_or_repr(serve, caplog):
    caplog.set_level(logging.DEBUG)
    _, app = backend()
    server = serve(fail_every(app, 2, 400))  # requests 1, 3, ... succeed; 2, 4, ... get a 400
    down = serve(fail_every(backend()[1], 1, 503))
    messages = []
    good = load_model(f"openai:backend@{server.url}/v1", api_key=SECRET, retry=FAST)
    flaky = load_model(f"openai:backend@{down.url}/v1", api_key=SECRET, retry=RetryPolicy(max_retries=2, backoff_base=0.001))
    gone = load_model(f"openai:m@http://127.0.0.1:{_closed_port()}/v1", api_key=SECRET, retry=RetryPolicy(max_retries=1, backoff_base=0.001))
    assert asyncio.run(good.chat("ok")).text == "pong: ok"
    for model in (good, flaky, gone):
        with pytest.raises(ModelError) as info:
            asyncio.run(model.chat("fail"))
        messages += [str(info.value), repr(info.value), str(info.value.__cause__), repr(info.value.__cause__)]
        messages += [repr(model.provider), model.name, str(vars(model.provider).get("name"))]
    everything = "\n".join(messages) + "\n" + caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    assert "HTTP 400" in everything and "gave up" in everything and "cannot connect" in everything
    assert SECRET not in everything
    assert SECRET[-10:] not in everything
