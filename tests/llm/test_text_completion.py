"""The raw text-completion call (`Model.text`): a prompt string with stop strings and no chat
template, as a base model is prompted; on hf:, scripted: and openai: (/v1/completions)."""

from __future__ import annotations

import asyncio

import pytest

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.llm.hf import HFProvider
from selfalign.llm.scripted import Rule, ScriptedProvider
from selfalign.llm.types import Sampling


class _Cache(dict):
    def get_call(self, key):
        return self.get(key)

    def put_call(self, key, value):
        self[key] = value


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    provider = HFProvider(str(tiny_model_dir), device="cpu")
    yield provider
    asyncio.run(provider.close())


def test_hf_text_goes_in_without_a_chat_template(tiny):
    prompt = "User: name a colour\nAssistant:"
    result = asyncio.run(Model(tiny).text(prompt, temperature=0, max_tokens=6))
    assert result.prompt_tokens == len(tiny.tokenizer(prompt)["input_ids"])  # the prompt as is: no template
    chat = tiny.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                              tokenize=False)
    assert result.prompt_tokens < len(tiny.tokenizer(chat, add_special_tokens=False)["input_ids"])


def test_hf_text_is_seeded_and_stops_at_a_stop_string(tiny):
    model = Model(tiny)
    free = asyncio.run(model.text("the", temperature=1.0, seed=3, max_tokens=24))
    again = asyncio.run(model.text("the", temperature=1.0, seed=3, max_tokens=24))
    assert free.text == again.text
    stop = next((c for c in free.text[2:] if not c.isspace()), None)
    assert stop is not None, free.text
    cut = asyncio.run(model.text("the", temperature=1.0, seed=3, max_tokens=24, stop=(stop,)))
    assert stop not in cut.text and free.text.startswith(cut.text) and cut.finish_reason == "stop"


def test_text_calls_are_cached_apart_from_chat_calls():
    provider = ScriptedProvider([Rule(__import__("re").compile(""), ["one", "two", "three", "four"])])
    cache = _Cache()
    model = Model(provider, cache=cache)
    first = asyncio.run(model.text("Question: hi\nAnswer:", seed=1))
    second = asyncio.run(model.text("Question: hi\nAnswer:", seed=1))
    assert second.cached and second.text == first.text and len(provider.requests) == 1
    asyncio.run(model.chat("Question: hi\nAnswer:", seed=1))  # the same words as a chat: another call
    assert len(provider.requests) == 2 and len(cache) == 2


def test_scripted_text_is_cut_at_the_first_stop_string():
    provider = ScriptedProvider([Rule(__import__("re").compile("Answer:$"), ["yes.\nUser: more\nAssistant: no"])])
    result = asyncio.run(Model(provider).text("Answer:", stop=("\nUser:",)))
    assert result.text == "yes."


def test_a_provider_without_raw_text_says_so():
    class ChatOnly:
        name, constrained = "chat-only", False

        async def complete(self, request):  # pragma: no cover - never reached
            raise AssertionError

        async def close(self):
            return None

    model = Model(ChatOnly())
    assert not model.completes_text
    with pytest.raises(UserError, match="does not complete raw text"):
        asyncio.run(model.text("hi"))


def test_openai_text_goes_to_v1_completions(serve):
    from fastapi import FastAPI

    seen = []
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(body: dict):
        seen.append(body)
        return {"id": "c1", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": " Paris.", "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}

    server = serve(app)
    from selfalign.llm import load_model

    model = load_model(f"openai:base@{server.url}/v1")
    result = asyncio.run(model.text("Q: capital of France?\nA:", sampling=Sampling(temperature=0.5, max_tokens=9,
                                                                                 stop=("\nQ:",), seed=4)))
    asyncio.run(model.close())
    assert result.text == " Paris." and result.prompt_tokens == 7 and result.finish_reason == "stop"
    assert seen == [{"model": "base", "prompt": "Q: capital of France?\nA:", "temperature": 0.5, "top_p": 1.0,
                     "max_tokens": 9, "stop": ["\nQ:"], "seed": 4}]
