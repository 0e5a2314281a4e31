"""The server against hostile clients, on the tiny model with random weights (its answers run to
their token limit, as a hostile client wants): every invalid request is
a 4xx that says why (never a 500, never a library path); dropped clients cancel their
generation; slow clients are cut off; a full server answers 503 with Retry-After; SIGTERM stops
it within 5 s."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from selfalign.llm import load_model
from selfalign.serve import BackgroundServer, app_for_model, create_app
from selfalign.llm.types import Completion

USER = [{"role": "user", "content": "hello there"}]


LIMIT = 4000  # the tiny model's context is 4096


@pytest.fixture(scope="module")
def tiny(random_model_dir):
    """(server, model): the tiny model served as "tiny", answers capped at LIMIT tokens."""
    model = load_model(f"hf:{random_model_dir}")
    with BackgroundServer(app_for_model(model, "tiny", max_tokens_limit=LIMIT)) as server:
        yield server, model


def post(server, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + "/v1/chat/completions", content=data,
                      headers={"content-type": "application/json"}, timeout=kw.pop("timeout", 60), **kw)


def wait_idle(server, model, seconds=10):
    """Until earlier tests' dropped requests have left the server and the engine."""
    engine = model.provider.engine
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not httpx.get(server.url + "/health").json()["running"] and engine._running is None and not engine.decoder.paused:
            return
        time.sleep(0.05)
    raise AssertionError("the server did not become idle")


def schema_format(schema):
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


BAD = [
    # invalid JSON schemas
    ({"response_format": schema_format({"type": "strng"})}, "unknown type 'strng'"),
    ({"response_format": schema_format({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}})},
     "'#/$defs/A' points at nothing"),
    ({"response_format": schema_format({"type": "string", "pattern": "(["})}, "not a valid regular expression"),
    ({"response_format": schema_format({"type": "integer", "minimum": 10, "maximum": 1})}, "minimum 10 is above maximum 1"),
    ({"response_format": schema_format({"type": "string", "minLength": 9, "maxLength": 2})}, "minLength 9 is above maxLength 2"),
    ({"response_format": schema_format({"enum": []})}, "an empty enum allows no value"),
    ({"response_format": schema_format({"type": "array", "maxItems": 10**12})}, "maxItems: must be a whole number"),
    ({"response_format": schema_format({"$ref": "http://example.com/s.json"})}, "only references inside the schema"),
    ({"response_format": schema_format({"type": "object", "properties": []})}, "properties: must be an object"),
    ({"response_format": schema_format(["not", "an", "object"])}, "schema"),
    # not text
    ({"messages": [{"role": "user", "content": "bad \ud800 text"}]}, "lone UTF-16 surrogate"),
    ({"messages": USER, "stop": ["\udfff"]}, "stop.0: holds a lone UTF-16 surrogate"),
    # absurd integers, wrong types
    ({"messages": USER, "seed": 10**30}, "seed"),
    ({"messages": USER, "max_tokens": -5}, "max_tokens"),
    ({"messages": USER, "temperature": 1e308 * 10}, "temperature"),
    ({"messages": "hello"}, "messages"),
    ({"messages": USER, "temperature": "hot"}, "temperature"),
    ({"messages": USER, "stop": 5}, "stop"),
    ({"messages": USER, "stop": ["x"] * 100}, "stop"),
    ({"messages": USER, "response_format": []}, "response_format"),
    ({"messages": [{"role": "user", "content": 12}]}, "messages.0.content"),
    ({"messages": USER, "stream": "yes please"}, "stream"),
    ({"messages": USER, "n": 10**40}, "n"),
]


@pytest.mark.parametrize("body, says", BAD)
def test_every_invalid_request_is_a_4xx_that_says_why(tiny, body, says):
    server, _ = tiny
    full = {"model": "tiny", "messages": USER, **body}
    reply = post(server, json.dumps(full, ensure_ascii=True, allow_nan=True))
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert "site-packages" not in error["message"] and ".py" not in error["message"]


@pytest.mark.parametrize("raw", [
    b"{not json",
    b"[]",
    b"null",
    b'{"model": "tiny", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b"\xff\xfe\x00garbage",
    b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
])
def test_broken_bodies_are_400s(tiny, raw):
    server, _ = tiny
    reply = post(server, raw)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"]


def test_unknown_model_is_a_404_naming_the_served_one_and_both_names_are_accepted(tiny, random_model_dir):
    server, _ = tiny
    reply = post(server, {"model": "gpt-4o", "messages": USER})
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == "The model 'gpt-4o' does not exist; this server serves 'tiny'"
    for name in ("tiny", f"hf:{random_model_dir}", str(random_model_dir)):
        ok = post(server, {"model": name, "messages": USER, "max_tokens": 2})
        assert ok.status_code == 200, (name, ok.text)


def test_max_tokens_is_capped_by_the_server_limit(random_model_dir):
    model = load_model(f"hf:{random_model_dir}")
    with BackgroundServer(app_for_model(model, "tiny", max_tokens_limit=8)) as server:
        reply = post(server, {"model": "tiny", "messages": USER, "max_tokens": 10**30, "temperature": 0.7,
                              "stop": ["never"]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 8


def test_clients_that_hang_up_cancel_their_generation(tiny):
    """32 requests for the largest answer, whose clients give up after a second: their rows
    leave the running batch, /health shows nothing running, and the next request is answered."""
    server, model = tiny
    provider = model.provider
    body = {"model": "tiny", "messages": USER, "max_tokens": LIMIT, "temperature": 0.7, "stop": ["never"]}

    async def hang_up():
        async with httpx.AsyncClient(timeout=60) as client:
            async def one(i):  # True: still generating when its client gave up (a stream's text keeps coming)
                try:
                    await asyncio.wait_for(client.post(server.url + "/v1/chat/completions",
                                                       json={**body, "seed": i, "stream": bool(i % 2)}), 1.0)
                    return False
                except TimeoutError:
                    return True
            return await asyncio.gather(*(one(i) for i in range(32)))

    gave_up = asyncio.run(hang_up())
    assert sum(gave_up) >= 16  # (a random model sometimes ends its turn early)
    deadline = time.monotonic() + 3  # far less than the thousands of steps their answers would take
    while (httpx.get(server.url + "/health").json()["running"] or provider.engine._active) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(server.url + "/health").json() == {"status": "ok", "running": 0, "waiting": 0, "slots": 64}
    assert not provider.engine._active  # the engine's running batch emptied
    started = time.monotonic()
    assert post(server, {"model": "tiny", "messages": USER, "max_tokens": 4}).status_code == 200
    assert time.monotonic() - started < 10


def test_a_short_request_is_answered_while_32_of_the_largest_decode(tiny):
    """Fair decoding: 32 requests for the largest answer fill the batch; a short one arriving
    later is answered within 10 s (long rows take turns), then the long ones are dropped."""
    server, model = tiny
    preempted = model.provider.engine.preemptions

    def long(i):  # greedy: the random model does not end these
        return {"model": "tiny", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": LIMIT,
                "temperature": 0}

    async def go():
        async with httpx.AsyncClient(timeout=120) as client:
            longs = [asyncio.ensure_future(client.post(server.url + "/v1/chat/completions", json=long(i)))
                     for i in range(32)]
            while (await client.get(server.url + "/health")).json()["running"] < 32:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # all 32 decoding
            started = time.monotonic()
            short = await client.post(server.url + "/v1/chat/completions",
                                      json={"model": "tiny", "messages": USER, "max_tokens": 8})
            waited = time.monotonic() - started
            still_running = sum(not t.done() for t in longs)
            for t in longs:
                t.cancel()
            await asyncio.gather(*longs, return_exceptions=True)
            return short, waited, still_running

    short, waited, still_running = asyncio.run(go())
    assert short.status_code == 200 and waited < 10
    assert still_running == 32  # it did not wait for a long one to end: one stepped aside
    assert model.provider.engine.preemptions > preempted


def test_a_prompt_longer_than_the_context_is_a_400_before_decoding(tiny):
    server, model = tiny
    wait_idle(server, model)
    calls = model.provider.engine.generate_calls
    reply = post(server, {"model": "tiny", "messages": [{"role": "user", "content": "word " * 200_000}]})
    assert reply.status_code == 400
    assert "tokens in all (prompt and answer); shorten the messages" in reply.json()["error"]["message"]
    assert model.provider.engine.generate_calls == calls


def test_a_schema_the_grammar_compiler_refuses_is_a_400_without_source_paths(tiny):
    server, _ = tiny
    reply = post(server, {"model": "tiny", "messages": USER,
                          "response_format": schema_format({"type": "string", "pattern": "(?<=a)b"})})
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "cannot compile this JSON schema" in message and ".cc" not in message and "/project" not in message


def test_a_full_server_answers_503_with_retry_after_and_health_shows_the_queue(serve):
    gate = asyncio.Event()

    async def slow(messages, sampling, json_schema):
        await asyncio.sleep(1.5)
        return Completion("done", 1, 1, "stop"), None

    server = serve(create_app(slow, "m", slots=1, slot_wait_s=0.3))

    async def flood():
        async with httpx.AsyncClient(timeout=30) as client:
            first = asyncio.ensure_future(client.post(server.url + "/v1/chat/completions",
                                                      json={"model": "m", "messages": USER}))
            await asyncio.sleep(0.2)
            health = (await client.get(server.url + "/health")).json()
            second = await client.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": USER})
            return health, second, await first

    health, busy, ok = asyncio.run(flood())
    assert health == {"status": "ok", "running": 1, "waiting": 0, "slots": 1}
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.json()["error"]["message"]
    assert ok.status_code == 200
    del gate


def test_slow_and_silent_connections_are_closed(random_model_dir):
    async def answer(messages, sampling, json_schema):
        return Completion("ok", 1, 1, "stop"), None

    with BackgroundServer(create_app(answer, "m"), read_timeout=1.0) as server:
        def closed_within(send, seconds=4.0):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.settimeout(seconds)
                if send:
                    sock.sendall(send)
                started = time.monotonic()
                try:
                    while sock.recv(4096):
                        pass
                except TimeoutError:
                    return False
                return time.monotonic() - started < seconds

        assert closed_within(b"")  # connects, says nothing
        assert closed_within(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-")  # headers never end
        assert closed_within(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"mo")
        # a whole request is answered as before
        assert httpx.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": USER}).status_code == 200


def test_sigterm_stops_the_server_within_5s_while_it_decodes(random_model_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfalign.cli.main", "serve", "--model", f"hf:{random_model_dir}",
         "--port", str(port), "--max-tokens-limit", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        long = {"model": str(random_model_dir), "messages": USER, "max_tokens": 4000, "stop": ["never"]}
        clients = [subprocess.Popen([sys.executable, "-c", f"import httpx; httpx.post({url!r} + '/v1/chat/completions', "
                                     f"json={long!r} | {{'seed': {i}}}, timeout=60)"]) for i in range(8)]
        time.sleep(3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(10)
        assert time.monotonic() - started < 5
        for c in clients:
            c.kill()
    finally:
        if proc.poll() is None:
            proc.kill()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_issues_enum_of_100000_strings_is_a_400_and_stalls_nothing(tiny):
    """A `response_format` enum of 100,000 strings once compiled for 90 s on the one thread that
    prepared every request; now it is refused before compiling, and the largest enum allowed
    compiles on the grammar pool while a plain request is answered."""
    server, _ = tiny
    huge = schema_format({"enum": [f"value number {i}" for i in range(100_000)]})
    reply = post(server, {"model": "tiny", "messages": USER, "response_format": huge, "max_tokens": 4})
    assert reply.status_code == 400 and "schema.enum: 100,000 values; at most 1,000 per enum" in reply.json()["error"]["message"]

    async def together():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            largest = schema_format({"enum": [f"other value {i}" for i in range(1_000)]})
            constrained = client.post("/v1/chat/completions", json={"model": "tiny", "messages": USER, "max_tokens": 16,
                                                                    "response_format": largest})
            plain = client.post("/v1/chat/completions", json={"model": "tiny", "messages": USER, "max_tokens": 2})
            return await asyncio.gather(constrained, plain)

    constrained, plain = asyncio.run(together())
    assert plain.status_code == 200 and constrained.status_code == 200
    assert json.loads(constrained.json()["choices"][0]["message"]["content"]).startswith("other value ")
