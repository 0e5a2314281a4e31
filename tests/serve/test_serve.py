"""`selfalign serve` driven by the official openai client over real HTTP."""

import json
import os
import socket
import subprocess
import sys
import re
import time

import httpx
import openai
import pytest

from selfalign.llm import Model, ModelError, RetryPolicy, TransientError
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import Completion, Sampling
from selfalign.serve import app_for_model, create_app

USER = [{"role": "user", "content": "hello there"}]


def echo_provider():
    return ScriptedProvider(lambda req: "echo: " + req.messages[-1].content)


@pytest.fixture
def echo(serve, client_for):
    provider = echo_provider()
    server = serve(app_for_model(Model(provider), "echo-model"))
    return provider, server, client_for(server)


def test_chat_completion_and_sampling_reach_the_model(echo):
    provider, _, client = echo
    reply = client.chat.completions.create(
        model="echo-model",
        messages=[{"role": "developer", "content": "be brief"}, *USER],
        temperature=0.2,
        top_p=0.9,
        max_tokens=33,
        stop="END",
        seed=7,
    )
    assert reply.object == "chat.completion" and reply.model == "echo-model"
    assert "selfalign" not in reply.model_extra  # only an answerer with an extra adds it
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 3 and reply.usage.total_tokens == 7
    request = provider.requests[-1]
    assert [m.role for m in request.messages] == ["system", "user"]  # developer is OpenAI's new "system"
    assert request.sampling == Sampling(temperature=0.2, top_p=0.9, max_tokens=33, stop=("END",), seed=7)
    assert request.json_schema is None


def test_defaults_list_stop_text_parts_and_max_completion_tokens(echo):
    provider, _, client = echo
    client.chat.completions.create(
        model="echo-model",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]}],
        stop=["X", "Y"],
        max_tokens=10,
        max_completion_tokens=20,
    )
    request = provider.requests[-1]
    assert request.messages[-1].content == "a b"
    assert request.sampling == Sampling(stop=("X", "Y"), max_tokens=20)  # the rest: the server's defaults


def test_streaming(echo):
    _, _, client = echo
    stream = client.chat.completions.create(
        model="echo-model", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    assert len({c.id for c in chunks}) == 1


def test_models(echo):
    _, server, client = echo
    models = client.models.list()
    assert [m.id for m in models.data] == ["echo-model"]
    assert httpx.get(server.url + "/health").json() == {"status": "ok", "running": 0, "waiting": 0, "slots": 64}


class ConstrainedEcho(ScriptedProvider):
    constrained = True


@pytest.mark.parametrize("constrained", [False, True])
def test_response_format_json_schema(serve, client_for, constrained):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "title": "Verdict",
    }
    provider = (ConstrainedEcho if constrained else ScriptedProvider)(lambda req: {"ok": True})
    client = client_for(serve(app_for_model(Model(provider), "m")))
    reply = client.chat.completions.create(
        model="m",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "Verdict", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content) == {"ok": True}
    request = provider.requests[-1]
    assert request.json_schema == schema
    # a provider that cannot constrain decoding is told the schema in the prompt, as Model.chat does
    assert ('"required": ["ok"]' in request.messages[-1].content) is not constrained

    client.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})
    assert provider.requests[-1].json_schema == {"type": "object"}
    client.chat.completions.create(model="m", messages=USER, response_format={"type": "text"})
    assert provider.requests[-1].json_schema is None


@pytest.mark.parametrize(
    "body, words",
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"messages": []}, "messages"),
        ({"messages": USER, "temperature": 5}, "temperature"),
        ({"messages": USER, "top_p": 0}, "top_p"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"messages": USER, "n": 2}, "only n=1"),
        ({"messages": USER, "response_format": {"type": "json_schema"}}, "needs a \"json_schema\""),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "content"),
    ],
)
def test_bad_requests_get_openai_style_400(echo, body, words):
    provider, _, client = echo
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", **body)
    assert words in info.value.message
    assert info.value.type == "invalid_request_error"
    assert provider.requests == []


def test_malformed_json_and_unknown_route(echo):
    _, server, _ = echo
    bad = httpx.post(server.url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.get(server.url + "/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Not Found"


def test_answerer_extra_is_returned_under_selfalign(serve, client_for):
    async def answer(messages, sampling, json_schema):
        return Completion("simulated", 3, 1, "stop"), {"trace": ["event", messages[-1].content]}

    server = serve(create_app(answer, "matrix"))
    client = client_for(server)
    reply = client.chat.completions.create(model="matrix", messages=USER)
    assert reply.choices[0].message.content == "simulated"
    assert reply.model_extra["selfalign"] == {"trace": ["event", "hello there"]}
    chunks = list(client.chat.completions.create(model="matrix", messages=USER, stream=True))
    assert chunks[-1].model_extra["selfalign"] == {"trace": ["event", "hello there"]}


@pytest.mark.parametrize(
    "exc, status",
    [
        (TransientError("overloaded at http://10.0.0.7:8000/v1"), 503),
        (ModelError("model is broken at http://10.0.0.7:8000/v1"), 502),
        (ValueError("bug in answerer at http://10.0.0.7:8000/v1"), 500),  # the server survives
    ],
)
def test_answer_failures_become_5xx_with_a_request_id_and_nothing_of_the_failure(serve, client_for, caplog, exc, status):
    async def answer(messages, sampling, json_schema):
        raise exc

    client = client_for(serve(create_app(answer, "m")))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.status_code == status
    assert "10.0.0.7" not in info.value.message and str(exc).split(" at ")[0] not in info.value.message
    request_id = re.search(r"request (req-\w+)", info.value.message).group(1)
    assert any(request_id in r.getMessage() and str(exc) in r.getMessage() for r in caplog.records)  # the log has it


def test_model_that_gave_up_retrying_is_a_503(serve, client_for):
    class Down(ScriptedProvider):
        async def complete(self, request):
            raise TransientError("upstream down")

    model = Model(Down(lambda r: ""), retry=RetryPolicy(max_retries=1, backoff_base=0.001))
    client = client_for(serve(app_for_model(model, "m")))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.status_code == 503 and "retry later" in info.value.message


def test_tiny_transformers_model_behind_the_server(serve, client_for, tmp_path):
    pytest.importorskip("transformers")
    try:
        import selfalign.llm.hf  # noqa: F401
    except ImportError:
        pytest.skip("selfalign.llm.hf (the hf: provider) is not available")
    from selfalign.llm import load_model
    from selfalign.llm.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "tiny")
    client = client_for(serve(app_for_model(load_model(f"hf:{path}"), "tiny")))
    reply = client.chat.completions.create(model="tiny", messages=USER, max_tokens=8, temperature=0, seed=1)
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 8
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}
    constrained = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": schema}},
    )
    # random weights, but the grammar leaves them no choice but a valid object
    assert constrained.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(constrained.choices[0].message.content)["ok"], bool)


# The serve command alone (cli.main imports every command module, some written by others).
CLI = (
    "import argparse, sys; from selfalign.cli import serve; p = argparse.ArgumentParser(); "
    "serve.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serve_end_to_end(tmp_path):
    rules = tmp_path / "rules.jsonl"
    rules.write_text('{"match": "", "reply": "from the cli"}\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--model", f"scripted:{rules}", "--port", str(port),
         "--served-name", "cli-model"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "selfalign serve did not start"
                time.sleep(0.2)
        assert [m.id for m in models.data] == ["cli-model"]
        reply = client.chat.completions.create(model="cli-model", messages=USER)
        assert reply.choices[0].message.content == "from the cli"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"serving scripted:{rules} as 'cli-model' on http://127.0.0.1:{port}/v1" in out


def test_cli_serve_defaults_and_bad_flags(capsys):
    import argparse

    from selfalign.cli import serve
    from selfalign.errors import UserError

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", "scripted:x.jsonl"])
    assert (args.host, args.port, args.served_name, args.func) == ("127.0.0.1", 8000, None, serve.run)
    bad = parser.parse_args(["serve", "--model", "scripted:x.jsonl", "--temperature", "9"])
    with pytest.raises(UserError, match="--temperature"):
        serve.run(bad)
