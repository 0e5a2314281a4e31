"""What one request may ask of the server is bounded, and nothing about a body's shape is a 5xx:
bodies over the size limit (413 before they are read whole), schemas over their bounds, prompts x
logprobs, fields the server cannot honour (400 naming them), nesting of any depth; a fuzz run
over both endpoints; a server's retained objects stay flat over 10,000 requests."""

import asyncio
import gc
import json
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import PromptLogprobs, TokenLogprob
from selfalign.serve import create_app, model_answerer
from selfalign.serve.schema_check import MAX_ENUM, MAX_SCHEMA_SIZE, MAX_STRING
from selfalign.serve.schemas import MAX_LOGPROB_ENTRIES, MAX_PROMPT_LOGPROBS, UNSUPPORTED_CHAT_FIELDS

USER = [{"role": "user", "content": "hello there"}]


async def score(prompts, top_k):
    """A stand-in prompt scorer: one token per prompt character (at most 3)."""
    def token(i, logprob):
        return TokenLogprob(token=i, text="t", logprob=logprob, top=tuple((f"t{k}", -1.0 - k) for k in range(top_k)))

    return [PromptLogprobs(tuple(token(i, None if i == 0 else -1.0) for i in range(min(3, len(p)))), token(9, -0.5))
            for p in prompts]


def make_app(**options):
    model = Model(ScriptedProvider.from_file(_rules_file()))  # as `serve --model scripted:FILE` has it
    return create_app(model_answerer(model), "m", score_prompts=score, **options)


_RULES = None


def _rules_file():
    global _RULES
    if _RULES is None:
        import tempfile

        _RULES = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        _RULES.write(json.dumps({"match": "", "reply": "a scripted answer"}) + "\n")
        _RULES.close()
    return _RULES.name


class Reply:
    def __init__(self, status, body):
        self.status_code, self.content = status, body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


async def asgi(app, method, path, data):
    """One request made straight into the ASGI app, no HTTP client (thousands of them in seconds)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "server": ("test", 80),
             "client": ("test", 1), "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]}
    sent, status, body = False, [], []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return Reply(status[0], b"".join(body))


def call(app, method, path, body=None, content=None, headers=None):
    data = content.encode() if isinstance(content, str) else content if content is not None else json.dumps(body).encode()
    return asyncio.run(asgi(app, method, path, data))


@pytest.fixture(scope="module")
def app():
    return make_app()


def chat(app, **fields):
    return call(app, "POST", "/v1/chat/completions", {"model": "m", "messages": USER, **fields})


def test_a_body_over_the_limit_is_a_413_before_it_is_read(serve):
    server = serve(make_app(max_body_bytes=1000))
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]})
    reply = httpx.post(server.url + "/v1/chat/completions", content=big, headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "--max-body-bytes" in reply.json()["error"]["message"]
    # Declared 400 MB and never sent: refused on the headers alone, the connection not held open.
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 400000000\r\n\r\n{")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    # Chunked, without a length: refused once the limit is passed.
    chunks = (b"x" * 300 for _ in range(100))
    reply = httpx.post(server.url + "/v1/chat/completions", content=chunks, headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert chat(make_app(max_body_bytes=1000)).status_code == 200  # a small body still passes


@pytest.mark.parametrize("field, value", [
    ("functions", [{"name": "f", "parameters": {}}]),
    ("function_call", "auto"),
    ("tool_choice", "required"),
    ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ("tools", [{"type": "function", "function": {"name": "f"}}]),
    ("logprobs", True),
    ("logit_bias", {"50256": -100}),
    ("presence_penalty", 0.5),
    ("modalities", ["text", "audio"]),
])
def test_fields_the_server_cannot_honour_are_400_naming_them(app, field, value):
    reply = chat(app, **{field: value})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith(f"{field}: {UNSUPPORTED_CHAT_FIELDS[field]}")


def test_neutral_values_of_those_fields_are_accepted(app):
    reply = chat(app, tool_choice="none", logprobs=False, presence_penalty=0, modalities=["text"], user="u", tools=[])
    assert reply.status_code == 200


def schema_format(schema):
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.mark.parametrize("schema, says", [
    ({"enum": [f"v{i}" for i in range(MAX_ENUM + 1)]}, f"schema.enum: {MAX_ENUM + 1:,} values; at most {MAX_ENUM:,} per enum"),
    ({"anyOf": [{"const": i} for i in range(MAX_ENUM + 1)]}, "schema.anyOf"),
    ({"enum": ["x" * (MAX_STRING + 1)]}, f"schema.enum.0: a string of {MAX_STRING + 1:,} characters"),
    ({"type": "string", "pattern": "a" * (MAX_STRING + 1)}, "schema.pattern: a string of"),
    ({"type": "object", "properties": {f"p{i}": {"enum": ["y" * 900]} for i in range(80)}},
     f"the schema is larger than {MAX_SCHEMA_SIZE:,} characters"),
])
def test_schema_work_is_bounded_and_a_schema_over_a_bound_is_a_400_naming_it(app, schema, says):
    reply = chat(app, response_format=schema_format(schema))
    assert reply.status_code == 400
    assert says in reply.json()["error"]["message"]


def test_prompts_times_logprobs_is_bounded(app):
    body = {"model": "m", "prompt": ["ab"] * (MAX_PROMPT_LOGPROBS // 20 + 1), "max_tokens": 0, "echo": True, "logprobs": 20}
    reply = call(app, "POST", "/v1/completions", body)
    assert reply.status_code == 400 and "over this server's bound" in reply.json()["error"]["message"]
    body["prompt"] = ["ab"] * (MAX_PROMPT_LOGPROBS // 20)
    reply = call(app, "POST", "/v1/completions", body)
    assert reply.status_code == 200 and len(reply.json()["choices"]) == MAX_PROMPT_LOGPROBS // 20
    # Few prompts, but long: their tokens x logprobs are bounded too (a text token is at least a byte).
    body["prompt"] = ["word " * (MAX_LOGPROB_ENTRIES // 21 // 5 + 1)]
    reply = call(app, "POST", "/v1/completions", body)
    assert reply.status_code == 400 and "log-probabilities per request" in reply.json()["error"]["message"]
    body["prompt"], body["logprobs"] = [list(range(MAX_LOGPROB_ENTRIES // 6 + 1))], 5
    assert call(app, "POST", "/v1/completions", body).status_code == 400


@pytest.mark.parametrize("depth", [10, 961, 963, 5_000, 100_000])
def test_nesting_of_any_depth_in_any_field_is_never_a_5xx(app, depth):
    nested = "[" * depth + "]" * depth
    for path, head in [("/v1/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "user_data": '),
                       ("/v1/completions", '{"model": "m", "prompt": "hi", "max_tokens": 0, "extra": ')]:
        reply = call(app, "POST", path, content=head + nested + "}", headers={"content-type": "application/json"})
        assert reply.status_code < 500, (path, depth, reply.text[:200])
    surrogate = '{"a": ' * 900 + '"\\ud800"' + "}" * 900  # parsed whole, then walked
    reply = call(app, "POST", "/v1/chat/completions", content=f'{{"model": "m", "messages": {json.dumps(USER)}, "x": {surrogate}}}',
                 headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "lone UTF-16 surrogate" in reply.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "developer", "tool", 3]),
                                 "content": st.text(max_size=20) | JSON})
CHAT = st.fixed_dictionaries({"model": st.sampled_from(["m", "", "other"]), "messages": st.lists(MESSAGE, max_size=3) | JSON},
                             optional={k: JSON for k in ["temperature", "top_p", "max_tokens", "stop", "seed", "n", "stream",
                                                         "response_format", "tools", "tool_choice", "stream_options",
                                                         "max_completion_tokens", "logprobs"]})
COMPLETION = st.fixed_dictionaries({"model": st.just("m"), "prompt": JSON | st.lists(st.integers(-5, 2**40), max_size=5)},
                                   optional={k: JSON for k in ["max_tokens", "echo", "logprobs", "top_logprobs", "temperature",
                                                               "seed", "n", "best_of", "stream", "suffix"]})


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(path_body=st.one_of(st.tuples(st.just("/v1/chat/completions"), CHAT | JSON),
                           st.tuples(st.just("/v1/completions"), COMPLETION | JSON)))
def test_fuzzed_bodies_on_both_endpoints_are_never_a_5xx(app, path_body):
    path, body = path_body
    content = json.dumps(body, allow_nan=True)
    reply = call(app, "POST", path, content=content, headers={"content-type": "application/json"})
    assert reply.status_code < 500, (content[:300], reply.text[:300])


def retained_after(app, requests):
    """Objects alive after `requests` chat requests, over those alive after a warm-up."""
    async def many(n):
        for i in range(n):
            body = {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}], "seed": i}
            assert (await asgi(app, "POST", "/v1/chat/completions", json.dumps(body).encode())).status_code == 200

    asyncio.run(many(200))  # warm: caches of fastapi and pydantic fill once
    gc.collect()
    before = len(gc.get_objects())
    asyncio.run(many(requests))
    gc.collect()
    return len(gc.get_objects()) - before


def test_requests_leave_no_objects_behind():
    grown = retained_after(make_app(), 2_000)
    assert grown < 1_000, f"{grown} more objects after 2,000 requests: something keeps each request"


@pytest.mark.slow
def test_ten_thousand_requests_leave_no_objects_behind():
    grown = retained_after(make_app(), 10_000)
    assert grown < 1_000, f"{grown} more objects after 10,000 requests: something keeps each request"


def test_the_count_sees_a_server_that_keeps_its_requests():
    model = Model(ScriptedProvider(lambda r: "kept", keep_requests=True))
    assert retained_after(create_app(model_answerer(model), "m"), 1_000) > 1_000
