"""The `openai:` provider against small servers that behave as vLLM, llama-cpp-python and a
server with no structured output do: one probe per run, the mode kept in the run, refusals not
retried, and JSON read leniently before strict validation."""

import asyncio
import json

import pytest
from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.llm import ModelError, RetryPolicy, SchemaError, TransientError, load_model
from selfalign.llm.structured import read_json
from selfalign.store import RunStore

FAST = RetryPolicy(max_retries=3, backoff_base=0.001, backoff_max=0.002)


class Verdict(BaseModel):
    feasible: bool
    reason: str


def fake_server(kind, answer):
    """A FastAPI app answering chat completions the way server `kind` does.

    vllm: owns its models as "vllm", takes `structured_outputs` and json_schema.
    llamacpp: refuses json_schema with a 500 whose body says the request is invalid (as
    llama-cpp-python does), takes json_object with a schema.
    bare: refuses any response_format with a 400, ignores unknown fields.
    `answer(body)` gives the text; every request body is kept in `app.state.bodies`.
    """
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    app.state.bodies = []
    app.state.model_lists = 0

    @app.get("/v1/models")
    async def models():
        app.state.model_lists += 1
        return {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm" if kind == "vllm" else kind}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        app.state.bodies.append(body)
        fmt = (body.get("response_format") or {}).get("type")
        if kind == "llamacpp" and fmt == "json_schema":
            message = "1 validation error for CreateChatCompletionRequest: response_format.type: Input should be 'text' or 'json_object'"
            return JSONResponse({"error": {"message": message, "type": "internal_server_error"}}, status_code=500)
        if kind == "bare" and fmt:
            return JSONResponse({"error": {"message": "response_format is not supported"}}, status_code=400)
        if kind != "vllm" and "structured_outputs" in body:
            pass  # unknown fields are ignored, as most servers do
        text = answer(body)
        return {
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }

    return app


def _is_probe(body):
    return "Answer with a JSON object." == body["messages"][-1]["content"]


def verdict_text(body):
    return '{"answer": "yes"}' if _is_probe(body) else '{"feasible": true, "reason": "ok"}'


def many(model, n=12):
    async def go():
        try:
            return await asyncio.gather(*(model.chat(f"judge {i}", schema=Verdict) for i in range(n)))
        finally:
            await model.close()

    return asyncio.run(go())


def test_vllm_gets_structured_outputs_without_whitespace_once_for_all_concurrent_calls(serve):
    # vLLM's constrained decoding lets raw control characters into strings: read them
    app = fake_server("vllm", lambda body: '{"answer": "yes"}' if _is_probe(body) else '  {"feasible": true, "reason": "a\tb\nc"}')
    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1", retry=FAST)
    results = many(model)
    assert [r.parsed for r in results] == [Verdict(feasible=True, reason="a\tb\nc")] * 12
    probes = [b for b in app.state.bodies if _is_probe(b)]
    assert len(probes) == 1 and app.state.model_lists == 1
    calls = [b for b in app.state.bodies if not _is_probe(b)]
    assert len(calls) == 12
    for body in calls:
        assert body["structured_outputs"] == {"json": Verdict.model_json_schema(), "disable_any_whitespace": True}
        assert "response_format" not in body and body["messages"][-1]["content"].startswith("judge")


def test_llamacpp_500_on_json_schema_falls_back_to_json_object_with_schema(serve):
    app = fake_server("llamacpp", verdict_text)
    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1", retry=FAST)
    assert all(r.parsed.feasible for r in many(model))
    assert model.provider.structured == "json_object" and model.stats.retries == 0
    kinds = [b["response_format"]["type"] for b in app.state.bodies]
    assert kinds == ["json_schema"] + ["json_object"] * 13  # one refused probe, one accepted, 12 calls
    assert app.state.bodies[-1]["response_format"]["schema"] == Verdict.model_json_schema()


def test_server_without_structured_output_gets_the_schema_in_the_prompt(serve):
    fenced = '\n```json\n{"feasible": false, "reason": "no"}\n```'
    app = fake_server("bare", lambda body: fenced)
    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1", retry=FAST)
    assert all(r.parsed == Verdict(feasible=False, reason="no") for r in many(model, 4))
    assert model.provider.structured == "none"
    calls = app.state.bodies[2:]  # after json_schema and json_object were refused
    assert len(calls) == 4 and all("response_format" not in b for b in calls)
    assert all('"feasible"' in b["messages"][-1]["content"] for b in calls)


def test_mode_is_kept_in_the_run_and_in_the_cache_key(serve, tmp_path):
    app = fake_server("llamacpp", verdict_text)
    server = serve(app)
    store = RunStore(tmp_path / "run")
    many(load_model(f"openai:m@{server.url}/v1", retry=FAST, cache=store), 2)
    sent = len(app.state.bodies)
    # a resumed run: no probe, and every call answered from the cache
    again = load_model(f"openai:m@{server.url}/v1", retry=FAST, cache=store)
    assert all(r.cached for r in many(again, 2))
    assert len(app.state.bodies) == sent and again.provider.structured == "json_object"
    # the same call in another mode is another call
    forced = load_model(f"openai:m@{server.url}/v1?structured=none", retry=FAST, cache=store)
    assert not any(r.cached for r in many(forced, 1))
    store.close()


def test_spec_forces_a_mode_without_probing(serve):
    app = fake_server("llamacpp", verdict_text)
    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1?structured=json_object", retry=FAST)
    assert model.name == f"openai:m@{server.url}/v1"
    many(model, 3)
    assert app.state.model_lists == 0 and len(app.state.bodies) == 3
    with pytest.raises(UserError, match="unknown structured='grammar'.*json_object"):
        load_model(f"openai:m@{server.url}/v1?structured=grammar")
    with pytest.raises(UserError, match="unknown option 'mode'"):
        load_model(f"openai:m@{server.url}/v1?mode=x")


def test_forced_mode_the_server_refuses_fails_at_once_naming_the_mode_and_the_fix(serve):
    app = fake_server("llamacpp", verdict_text)
    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1?structured=json_schema", retry=FAST)
    with pytest.raises(ModelError) as info:
        asyncio.run(model.chat("judge", schema=Verdict))
    assert not isinstance(info.value, TransientError)
    message = str(info.value)
    assert "refused the request (HTTP 500" in message and "Input should be" in message
    assert "structured output as json_schema" in message and "?structured=MODE" in message
    assert len(app.state.bodies) == 1 and model.stats.retries == 0


def test_500_without_invalid_words_is_still_retried(serve):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    seen = []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        seen.append(body)
        return JSONResponse({"error": {"message": "CUDA out of memory, try again"}}, status_code=500)

    server = serve(app)
    model = load_model(f"openai:m@{server.url}/v1", retry=FAST)
    with pytest.raises(ModelError, match="gave up after 4 tries"):
        asyncio.run(model.chat("x"))
    assert len(seen) == 4


def test_context_refusal_says_to_lower_max_tokens(serve):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        message = "This model's maximum context length is 2048 tokens. However, you requested 4096 tokens"
        return JSONResponse({"error": {"message": message}}, status_code=400)

    model = load_model(f"openai:m@{serve(app).url}/v1", retry=FAST)
    with pytest.raises(ModelError, match="lower --max-tokens"):
        asyncio.run(model.chat("x"))


def test_read_json_is_lenient_only_where_safe():
    assert read_json('  \n{"a": "x\ty\nz"}') == {"a": "x\ty\nz"}
    assert read_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert read_json('```\n[1]\n```\n') == [1]
    for bad in ('{"a": 1} trailing', "Sure! {\"a\": 1}", '{"a": 1', ""):
        with pytest.raises(ValueError, match="not JSON"):
            read_json(bad)


def test_schema_is_still_strict_after_lenient_reading(serve):
    app = fake_server("vllm", lambda body: '{"answer": "yes"}' if _is_probe(body) else '{"feasible": "perhaps", "reason": 3}')
    model = load_model(f"openai:m@{serve(app).url}/v1", retry=FAST)
    with pytest.raises(SchemaError, match="feasible"):
        asyncio.run(model.chat("judge", schema=Verdict))
    assert json.loads(json.dumps(app.state.bodies[-1]))["seed"] == 2  # the third attempt's seed
