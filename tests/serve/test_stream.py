"""`stream: true` against an hf: model: the answer's text arrives while it is decoded, joins to
the same text a plain request gets, and the stream's failures and hang-ups are handled."""

import asyncio
import json
import logging
import re
import socket
import time

import httpx
import openai
import pytest

from selfalign.llm import Model, ModelError
from selfalign.llm.types import Completion
from selfalign.serve import BackgroundServer, app_for_model

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def tiny(random_model_dir):
    """(server, model): the tiny model with random weights (its answers run to their limit)."""
    from selfalign.llm import load_model

    model = load_model(f"hf:{random_model_dir}")
    with BackgroundServer(app_for_model(model, "tiny")) as server:
        yield server, model


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=60)


def running(server):
    return httpx.get(server.url + "/health").json()["running"]


def idle(server, model=None, seconds=5):
    """Whether the server (and the model's engine) let go of every request within `seconds`."""
    deadline = time.monotonic() + seconds
    while running(server) or (model is not None and model.provider.engine._active):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_streamed_text_is_the_plain_answer_in_pieces(tiny):
    server, _ = tiny
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    for extra in ({}, {"stop": ["e"]}, {"response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}}):
        request = {"model": "tiny", "messages": USER, "max_tokens": 32, "temperature": 0, **extra}
        plain = client(server).chat.completions.create(**request)
        chunks = list(client(server).chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert "".join(pieces) == plain.choices[0].message.content
        assert len(pieces) > 1 or len(plain.choices[0].message.content) <= 2
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
        assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_text_arrives_before_the_answer_ends(tiny):
    """The first piece of a long answer is read while the server still decodes it."""
    server, _ = tiny
    stream = client(server).chat.completions.create(
        model="tiny", messages=USER, max_tokens=400, temperature=0.7, seed=3, stop=["never"], stream=True
    )
    first = next(c for c in stream if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content and running(server) == 1
    rest = [c for c in stream]
    assert rest[-1].choices[0].finish_reason in ("length", "stop")


def test_a_client_that_hangs_up_mid_stream_stops_its_generation(tiny):
    server, model = tiny
    body = {"model": "tiny", "messages": USER, "max_tokens": 4000, "temperature": 0.7, "stop": ["never"], "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert any('"content": "' in line and '"content": ""' not in line for line in lines)  # text came
    assert idle(server, model, seconds=5)  # far less than the 4000 tokens would take


def test_a_prompt_too_long_is_a_400_before_the_stream_starts(tiny):
    server, _ = tiny
    with pytest.raises(openai.BadRequestError, match="shorten the messages"):
        client(server).chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=8, stream=True
        )


class FailsMidway:
    """Streams two pieces, then fails (as a forward pass out of memory would)."""

    name = "scripted:fails-midway"
    constrained = False

    async def complete(self, request):
        return await self.stream(request, None)

    async def stream(self, request, on_text):
        on_text("Hel")
        on_text("lo")
        await asyncio.sleep(0.05)
        raise ModelError("the engine failed at http://10.0.0.7:8000")

    async def close(self):
        pass


class FailsAtOnce(FailsMidway):
    async def stream(self, request, on_text):
        raise ModelError("the engine failed at http://10.0.0.7:8000")


def test_a_failure_mid_stream_ends_it_with_an_error_event_and_a_request_id(serve, caplog):
    server = serve(app_for_model(Model(FailsMidway()), "m"))
    stream = client(server).chat.completions.create(model="m", messages=USER, stream=True)
    pieces = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "Hello"
    assert "10.0.0.7" not in info.value.message and "the model failed" in info.value.message
    request_id = re.search(r"request (req-\w+)", info.value.message).group(1)
    assert any(request_id in r.getMessage() and "10.0.0.7" in r.getMessage() for r in caplog.records)
    assert idle(server)  # its slot was given back


def test_a_failure_before_any_text_is_a_502(serve):
    server = serve(app_for_model(Model(FailsAtOnce()), "m"))
    reply = httpx.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert reply.status_code == 502 and "10.0.0.7" not in reply.text
    assert "request req-" in json.loads(reply.text)["error"]["message"]


def test_a_cached_answer_streams_whole(serve, tmp_path):
    """A cache hit tells no pieces: its text comes in one chunk."""

    class Cache(dict):
        def get_call(self, key):
            return self.get(key)

        def put_call(self, key, value):
            self[key] = value

    class Once(FailsMidway):
        async def stream(self, request, on_text):
            on_text("Hel")
            on_text("lo")
            return Completion(text="Hello!", prompt_tokens=1, completion_tokens=2, finish_reason="stop")

    server = serve(app_for_model(Model(Once(), cache=Cache()), "m"))
    for expected in (["Hel", "lo", "!"], ["Hello!"]):
        chunks = list(client(server).chat.completions.create(model="m", messages=USER, stream=True, seed=1))
        assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == expected


class Flood(FailsMidway):
    """Streams 32 MB of text at once, then decodes on until it is cancelled."""

    cancelled = False

    async def stream(self, request, on_text):
        for _ in range(32):
            on_text("x" * 1_000_000)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            Flood.cancelled = True
            raise


def test_a_client_that_reads_nothing_of_its_stream_is_cut_off(caplog):
    """Its answer fills the buffers; once nothing could be written for `read_timeout`, the
    connection is closed, and the request's generation and slot are let go."""
    caplog.set_level(logging.INFO, logger="selfalign.serve.server")
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    with BackgroundServer(app_for_model(Model(Flood()), "m"), read_timeout=1.0) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)  # and never reads
            deadline = time.monotonic() + 10
            while not running(server) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert idle(server, seconds=10)
            assert Flood.cancelled
        assert any("read nothing of its answer" in r.getMessage() for r in caplog.records)


def test_clients_that_hang_up_at_any_moment_leave_no_slot_held(tiny):
    """64 streams whose clients go at random moments (before the first piece, during the stream,
    after it): the server and the engine end up idle with every slot free."""
    import random

    server, model = tiny
    delays = random.Random(0).choices([0.0, 0.001, 0.01, 0.05, 0.1, 0.3, 1.0], k=64)
    body = {"model": "tiny", "messages": USER, "max_tokens": 200, "temperature": 0.7, "stop": ["never"], "stream": True}

    async def go():
        async with httpx.AsyncClient(timeout=60) as client:
            async def one(i, delay):
                async with client.stream("POST", server.url + "/v1/chat/completions", json={**body, "seed": i}) as response:
                    await asyncio.sleep(delay)
                    async for _ in response.aiter_lines():
                        break

            tasks = [asyncio.ensure_future(asyncio.wait_for(one(i, d), d + 0.002)) for i, d in enumerate(delays)]
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    assert idle(server, model, seconds=20)
    assert httpx.get(server.url + "/health").json() == {"status": "ok", "running": 0, "waiting": 0, "slots": 64}
