"""The hf: provider's limits: a prompt longer than the context is refused before decoding,
max_tokens is capped by the context, compiled grammars are cached with a bound."""

from __future__ import annotations

import asyncio

import pytest

from selfalign.errors import UserError
from selfalign.llm import hf
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


def test_compiled_grammars_are_kept_for_the_most_recent_schemas_only(provider, monkeypatch):
    monkeypatch.setattr(hf, "GRAMMAR_CACHE_SIZE", 2)
    provider._grammars.clear()
    schemas = [{"type": "object", "properties": {f"k{i}": {"type": "integer"}}, "required": [f"k{i}"]} for i in range(3)]
    for schema in [schemas[0], schemas[1], schemas[0], schemas[2]]:
        provider._grammar(schema)
    kept = list(provider._grammars)
    assert len(kept) == 2
    assert '"k1"' not in "".join(kept)  # the least recently used went first


def test_a_schema_the_grammar_compiler_rejects_is_the_callers_error(provider):
    with pytest.raises(UserError, match="cannot compile this JSON schema"):
        provider._grammar({"type": "string", "pattern": "(?<=a)b"})
