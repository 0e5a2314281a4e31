"""The hf: provider's limits: a prompt longer than the context is refused before decoding,
max_tokens is capped by the context, compiled grammars are cached with a bound."""

from __future__ import annotations

import asyncio
import json

import pytest

from selfalign.errors import UserError
from selfalign.llm import grammars as grammars_module
from selfalign.llm.hf import HFProvider
from selfalign.llm.types import ChatRequest, Message, Sampling


@pytest.fixture(scope="module")
def provider(random_model_dir):
    p = HFProvider(str(random_model_dir), device="cpu")
    yield p
    asyncio.run(p.close())


def ask(provider, text, max_tokens=8, schema=None):
    request = ChatRequest((Message(role="user", content=text),), Sampling(max_tokens=max_tokens, temperature=0), schema)
    return asyncio.run(provider.complete(request))


def prompt_tokens(provider, text):
    rendered = provider.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                      tokenize=False)
    return len(provider.tokenizer(rendered, add_special_tokens=False)["input_ids"])


def test_a_prompt_longer_than_the_context_is_refused_before_decoding(provider):
    calls = provider.engine.generate_calls
    huge = "word " * 200_000  # about 1 MB
    with pytest.raises(UserError, match=rf"the prompt is \d+ tokens, and .* holds {provider.context_length} tokens"):
        ask(provider, huge)
    assert provider.engine.generate_calls == calls


def test_max_tokens_is_capped_by_what_the_context_holds_after_the_prompt(provider):
    overhead = prompt_tokens(provider, "")
    per_word = (prompt_tokens(provider, "word " * 100) - overhead) / 100
    long_text = "word " * int((provider.context_length - overhead - 20) / per_word)
    room = provider.context_length - prompt_tokens(provider, long_text)
    assert 0 < room < 100
    done = ask(provider, long_text, max_tokens=1000)
    assert done.completion_tokens <= room


def object_schema(i):
    return {"type": "object", "properties": {f"k{i}": {"type": "integer"}}, "required": [f"k{i}"]}


def test_compiled_grammars_are_kept_within_a_byte_bound_least_recently_used_first(provider, monkeypatch):
    grammars = provider._grammars
    grammars.clear()
    one = asyncio.run(grammars.get(object_schema(0))).memory_size_bytes
    monkeypatch.setattr(grammars_module, "GRAMMAR_CACHE_BYTES", int(2.5 * one))  # room for two
    for i in [1, 0, 2]:
        asyncio.run(grammars.get(object_schema(i)))
    kept = grammars.keys()
    assert len(kept) == 2 and grammars.bytes <= 2.5 * one
    assert '"k1"' not in "".join(kept)  # the least recently used went first


def test_a_schema_the_grammar_compiler_rejects_is_the_callers_error(provider):
    with pytest.raises(UserError, match="cannot compile this JSON schema"):
        asyncio.run(provider._grammars.get({"type": "string", "pattern": "(?<=a)b"}))


def test_a_slow_compile_holds_up_neither_other_requests_nor_other_schemas(provider, monkeypatch):
    """A compile that never ends (a stand-in) for one request: a plain request and another
    schema's request are answered meanwhile; the slow one gets a UserError at the time bound."""
    import threading

    release = threading.Event()
    real = provider._grammars._make_compiler

    class Stuck:
        def __init__(self):
            self.inner = real()

        def compile_json_schema(self, text, **kw):
            if "stuck" in text:
                release.wait(30)
            return self.inner.compile_json_schema(text, **kw)

    grammars = grammars_module.GrammarCache(Stuck, threads=2)
    monkeypatch.setattr(provider, "_grammars", grammars)
    monkeypatch.setattr(grammars_module, "COMPILE_TIMEOUT_S", 5.0)
    stuck = {"type": "object", "properties": {"stuck": {"type": "integer"}}}

    async def together():
        slow = asyncio.ensure_future(provider.complete(
            ChatRequest((Message(role="user", content="a"),), Sampling(max_tokens=2, temperature=0), stuck)))
        await asyncio.sleep(0.1)
        plain = await provider.complete(ChatRequest((Message(role="user", content="b"),), Sampling(max_tokens=2, temperature=0)))
        other = await provider.complete(
            ChatRequest((Message(role="user", content="c"),), Sampling(max_tokens=8, temperature=0), object_schema(7)))
        assert not slow.done()  # both answered while the stuck compile runs
        return plain, other, slow

    try:
        plain, other, slow = asyncio.run(asyncio.wait_for(together(), 60))
        assert plain.completion_tokens >= 1 and other.text.startswith("{")
    finally:
        release.set()
        grammars.close()


def test_a_compile_past_its_time_bound_is_a_users_error(provider, monkeypatch):
    import threading

    release = threading.Event()

    class Stuck:
        def compile_json_schema(self, text, **kw):
            release.wait(30)
            raise RuntimeError("released")

    grammars = grammars_module.GrammarCache(Stuck, threads=1)
    monkeypatch.setattr(grammars_module, "COMPILE_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(UserError, match=r"did not compile for constrained decoding within 0.2s; send a smaller one"):
            asyncio.run(grammars.get({"type": "integer"}))
        queued = asyncio.run(_give_up_on(grammars, {"type": "string"}))  # waits behind the stuck one, gives up
        assert queued.cancelled()  # never started, so dropped with its request
    finally:
        release.set()
        grammars.close()


async def _give_up_on(grammars, schema):
    task = asyncio.ensure_future(grammars.get(schema))
    await asyncio.sleep(0.05)
    future = grammars._compiling[json.dumps(schema, sort_keys=True)][0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return future
