"""An upstream server whose error text quotes the API key: the key reaches no artefact (the run
store's bytes, summary.json, the console, `export --failures`, the report) and `serve` in front
of it answers its own clients with a request id, never the upstream's words or URL."""

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from clitools import selfalign

from selfalign.llm import Model, RetryPolicy, TransientError, load_model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.redact import redact
from selfalign.serve import BackgroundServer, app_for_model

KEY = "local-planted-key-8f3a9c2e71"  # configured (OPENAI_API_KEY), not shaped like any known key
SHAPED = "sk-proj-PLANTEDa1b2c3d4e5f6"  # shaped like a key, configured nowhere


class Upstream(BaseHTTPRequestHandler):
    """Refuses every request, quoting the key it was sent, another key and its own address: the
    first with a 503 (so the client prints a retry line), the others with a 400."""

    posts = 0

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sent = self.headers.get("authorization", "")
        Upstream.posts += 1
        said = "overloaded for" if Upstream.posts == 1 else "invalid key"
        message = f"{said} {sent} (also tried {SHAPED}, api_key={KEY}) at http://{self.headers['host']}/v1"
        self._send(503 if Upstream.posts == 1 else 400, {"error": {"message": message, "type": "invalid_request_error"}})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    Upstream.posts = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def assert_clean(text, where):
    assert KEY not in text and SHAPED not in text, f"a key in {where}"


def test_redact_removes_configured_keys_and_key_shapes(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefgh1234")
    text = redact("Bearer abc.def.ghi123 sk-abcdefghijkl tok-abcdefgh1234 hf_abcdefghijklmnopqrst api_key: 'zzzzzzzzzz' at column 14")
    assert text == "Bearer [redacted] [redacted] [redacted] [redacted] api_key: '[redacted]' at column 14"
    assert redact("cannot connect to https://me:hunter2pass@10.0.0.7/v1") == "cannot connect to https://[redacted]@10.0.0.7/v1"


def test_retry_lines_and_the_final_error_are_redacted(caplog):
    class Down(ScriptedProvider):
        async def complete(self, request):
            raise TransientError(f"HTTP 503: bad key {SHAPED}")

    import asyncio

    model = Model(Down(lambda r: ""), retry=RetryPolicy(max_retries=1, backoff_base=0.001))
    with caplog.at_level(logging.WARNING), pytest.raises(Exception) as info:
        asyncio.run(model.chat("hi"))
    assert "retry 1 of 1" in caplog.text
    assert_clean(caplog.text, "the retry line")
    assert_clean(str(info.value), "the error") and assert_clean(str(info.value.__cause__), "its cause")


def test_a_key_quoted_by_the_upstream_reaches_no_artefact(tmp_path, upstream):
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    run = tmp_path / "run"
    made = selfalign("critique-revise", "--model", f"openai:m@{upstream}/v1", "--prompts", prompts, "--out", run,
                     env=env, check=False)
    assert made.returncode != 0 and "1 items failed" in made.stdout, made.stdout + made.stderr
    assert "retry 1 of 5" in made.stderr and "[redacted]" in made.stderr  # the retry line, its keys redacted
    failures = selfalign("export", run, "--failures", env=env)
    assert "[redacted]" in failures.stdout  # the upstream's message is there, less the keys
    report = selfalign("report", run, "--out", tmp_path / "report.html", env=env)
    for proc, name in [(made, "run"), (failures, "export --failures"), (report, "report")]:
        assert_clean(proc.stdout + proc.stderr, f"the console of {name}")
    for path in [*run.iterdir(), tmp_path / "report.html"]:
        assert_clean(path.read_bytes().decode("utf-8", "replace"), path.name)


def test_serve_in_front_of_the_upstream_sends_a_request_id_only(upstream, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    Upstream.posts = 1  # past the first 503: every answer is the 400
    model = load_model(f"openai:m@{upstream}/v1", retry=RetryPolicy(max_retries=0))
    with BackgroundServer(app_for_model(model, "m")) as server, caplog.at_level(logging.WARNING):
        reply = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 502
    message = reply.json()["error"]["message"]
    assert_clean(reply.text, "the reply")
    assert upstream.split("//")[1] not in reply.text and "invalid key" not in reply.text
    request_id = message.split("request ")[1].split(")")[0]
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert logged and "invalid key" in logged[0]  # the details, in the server's own log
    assert_clean(caplog.text, "the server's log")
