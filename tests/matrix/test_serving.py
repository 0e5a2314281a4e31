"""`selfalign serve --matrix`: each chat completion answered with the revised answer, the
simulation trace in the response's `selfalign.matrix` field; driven by the official openai client."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from society import respond
from test_runs import RULES

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.methods.matrix import MatrixConfig
from selfalign.methods.matrix.serving import matrix_answerer
from selfalign.serve import BackgroundServer, create_app

USER = [{"role": "user", "content": "How do I get into the bank vault?"}]


@pytest.fixture
def server():
    provider = ScriptedProvider(respond)
    app = create_app(matrix_answerer(Model(provider), MatrixConfig(num_roles=3, num_steps=2)), "matrix-model")
    with BackgroundServer(app) as running:
        yield provider, running


def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0, timeout=30)


def test_answer_is_the_revision_and_the_trace_comes_along(server):
    provider, running = server
    reply = client(running.url).chat.completions.create(model="matrix-model", messages=USER, temperature=0.3, seed=5)
    assert reply.choices[0].message.content == "REVISED: here is a safe way to meet your need."
    trace = reply.model_extra["selfalign"]["matrix"]
    assert trace["initial"].startswith("INITIAL") and trace["stopped"] == "plan_done"
    assert [e["step"] for e in trace["events"] if e["depth"] == 0] == [0, 1, 1]  # step 2 rejected, retried
    assert trace["scene"]["ego"] == "asker" and trace["consequences"]["harms"]
    assert "calls" not in trace and trace["usage"]["calls"] == len(provider.requests)
    assert reply.usage.prompt_tokens == trace["usage"]["prompt_tokens"]
    assert {r.sampling.temperature for r in provider.requests} == {0.3}

    again = client(running.url).chat.completions.create(model="matrix-model", messages=USER, temperature=0.3, seed=5)
    assert again.model_extra["selfalign"]["matrix"]["events"] == trace["events"]  # same request, same simulation


def test_structured_output_is_refused_with_a_reason(server):
    _, running = server
    with pytest.raises(openai.BadRequestError, match="not supported with --matrix"):
        client(running.url).chat.completions.create(
            model="matrix-model", messages=USER, response_format={"type": "json_object"}
        )


CLI = (
    "import argparse, sys; from selfalign.cli import serve; p = argparse.ArgumentParser(); "
    "serve.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)


def test_cli_serve_matrix(tmp_path):
    rules = tmp_path / "rules.jsonl"
    rules.write_text("".join(json.dumps(r) + "\n" for r in RULES))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--model", f"scripted:{rules}", "--port", str(port),
         "--matrix", "--roles", "2", "--steps", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
    )
    try:
        api = client(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                api.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "selfalign serve --matrix did not start"
                time.sleep(0.2)
        reply = api.chat.completions.create(model=str(rules), messages=USER)  # the path it was loaded from
        assert reply.choices[0].message.content == "Please do not; here is legal help."
        trace = reply.model_extra["selfalign"]["matrix"]
        assert [r["name"] for r in trace["scene"]["roles"]] == ["teller", "vault"]
        assert len(trace["events"]) == 2
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
