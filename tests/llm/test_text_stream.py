"""An answer's text as it is decoded (llm/text_stream.py, the hf: engine's tokens, the Model's
`on_text`): the pieces told are always the start of the final text, and nothing is told twice."""

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

from selfalign.llm import Model, RetryPolicy, TransientError
from selfalign.llm.batch import Row, read_completion
from selfalign.llm.text_stream import TextStream, final_length
from selfalign.llm.types import ChatRequest, Completion, Sampling

EOS = 0


class ByteTokenizer:
    """Token i > 0 is the UTF-8 bytes in VOCAB[i]; decoding joins them (a byte-level vocabulary)."""

    VOCAB = [b"", b"Hello", b" world", b" .", b"\xc3", b"\xa9", b" n't", b"END", b"E", b"ND", b" ", b"'", b"s"]

    def __init__(self, clean_up_tokenization_spaces=False):
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces

    def decode(self, tokens, skip_special_tokens=True):
        text = b"".join(self.VOCAB[t] for t in tokens if t != EOS).decode("utf-8", errors="replace")
        if self.clean_up_tokenization_spaces:
            for pattern in (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"):
                text = text.replace(pattern, pattern[1:])
        return text


def pieces_of(tokenizer, tokens, stop=()):
    stream = TextStream.of_tokenizer(tokenizer, stop)
    return [stream.push(t) for t in tokens]


def test_text_is_told_once_it_is_final():
    assert pieces_of(ByteTokenizer(), [1, 2, EOS]) == ["Hello", " world", ""]  # the end of turn writes nothing


def test_a_character_split_over_tokens_waits_for_its_last_byte():
    assert pieces_of(ByteTokenizer(), [1, 4, 5, 2]) == ["Hello", "", "é", " world"]


def test_text_that_may_begin_a_stop_string_waits():
    # "E" may begin "END": held; "ND" completes it, so the final text ends before it
    assert pieces_of(ByteTokenizer(), [1, 8, 9], stop=("END",)) == ["Hello", "", ""]
    # "E" followed by " world": not a stop string after all, so both are told
    assert pieces_of(ByteTokenizer(), [1, 8, 2], stop=("END",)) == ["Hello", "", "E world"]


def test_where_spaces_are_cleaned_up_a_space_that_may_go_waits():
    cleaning = ByteTokenizer(clean_up_tokenization_spaces=True)
    assert pieces_of(cleaning, [1, 3]) == ["Hello", "."]  # " ." became "."
    # a space may begin " ." or " 's": it waits; "  world" is no pattern, " 's" becomes "'s"
    assert pieces_of(cleaning, [1, 10, 2]) == ["Hello", "", "  world"]
    assert pieces_of(cleaning, [1, 10, 11, 12]) == ["Hello", "", "", "'s"]
    assert pieces_of(ByteTokenizer(), [1, 10, 11, 12]) == ["Hello", " ", "'", "s"]  # a tokenizer that keeps spaces


@pytest.mark.parametrize(
    "text, stop, waits_for, expected",
    [
        ("abc", (), (), 3),
        ("abc\ufffd", (), (), 3),
        ("abcE", ("END",), ("END",), 3),
        ("abcEN", ("END",), ("END",), 3),
        ("abENDc", ("END",), ("END",), 2),
        ("ab .", (), (" .",), 4),  # a whole pattern left in cleaned text stays
        ("ab n", (), (" n't",), 2),
    ],
)
def test_final_length(text, stop, waits_for, expected):
    assert final_length(text, stop, waits_for) == expected


@settings(max_examples=300, deadline=None)
@given(
    tokens=st.lists(st.integers(min_value=1, max_value=len(ByteTokenizer.VOCAB) - 1), max_size=12),
    stop=st.sampled_from([(), ("END",), (" w", "s"), ("é",)]),
    cleans=st.booleans(),
)
def test_pieces_always_start_the_final_text(tokens, stop, cleans):
    """Against the engine's own reading of a finished row (batch.read_completion), for any tokens:
    every prefix of the told pieces starts the final text, however the row is cut."""
    tokenizer = ByteTokenizer(clean_up_tokenization_spaces=cleans)
    stream = TextStream.of_tokenizer(tokenizer, stop)
    told = ""
    for n, token in enumerate(tokens, start=1):
        told += stream.push(token)
        final = read_completion(tokenizer, [EOS], Row([1], max_tokens=n, stop=stop), tokens[:n], None).text
        assert final.startswith(told), (told, final)


class StreamingScripted:
    """A provider that streams: each attempt tells its text in pieces; the first attempt fails
    after two pieces (a transient failure), the second tells all of it again."""

    name = "scripted:streaming"
    constrained = False

    def __init__(self):
        self.attempts = 0

    async def complete(self, request):
        return await self.stream(request, None)

    async def stream(self, request, on_text):
        self.attempts += 1
        for piece in ["He", "llo", " there"]:
            if on_text is not None:
                on_text(piece)
            if self.attempts == 1 and piece == "llo":
                raise TransientError("dropped")
        return Completion(text="Hello there", prompt_tokens=1, completion_tokens=3, finish_reason="stop")

    async def close(self):
        pass


def test_a_retried_call_tells_each_piece_once():
    model = Model(StreamingScripted(), retry=RetryPolicy(max_retries=2, backoff_base=0.001))
    told = []
    completion, cached = asyncio.run(model.complete([{"role": "user", "content": "hi"}], Sampling(), on_text=told.append))
    assert model.provider.attempts == 2
    assert told == ["He", "llo", " there"] and completion.text == "Hello there" and not cached


def test_a_provider_that_does_not_stream_tells_nothing():
    from selfalign.llm.scripted import ScriptedProvider

    told = []
    model = Model(ScriptedProvider(lambda request: "whole"))
    completion, _ = asyncio.run(model.complete([{"role": "user", "content": "hi"}], Sampling(), on_text=told.append))
    assert told == [] and completion.text == "whole"


@pytest.fixture(scope="module")
def tiny(random_model_dir):
    from selfalign.llm import load_model

    return load_model(f"hf:{random_model_dir}")


def test_hf_rows_decoded_together_tell_their_own_text(tiny):
    """Eight rows in one batch, greedy and sampled, with stop strings and a JSON schema: each
    row's pieces join to the start of its completion, and greedy rows' texts match the same
    calls made without streaming."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    calls = [
        (Sampling(temperature=0.0 if i % 2 else 0.9, seed=i, max_tokens=24, stop=("e",) if i % 3 == 0 else ()),
         schema if i == 5 else None)
        for i in range(8)
    ]
    messages = [{"role": "user", "content": "tell me"}]

    async def run(stream):
        told = [[] for _ in calls]
        results = await asyncio.gather(*(
            tiny.complete(messages, sampling, schema, on_text=told[i].append if stream else None)
            for i, (sampling, schema) in enumerate(calls)
        ))
        return [c for c, _cached in results], told

    streamed, told = asyncio.run(run(True))
    plain, _ = asyncio.run(run(False))
    assert sum(len(t) > 1 for t in told) >= 4  # the text came in pieces, not at the end
    for completion, pieces, again in zip(streamed, told, plain):
        assert completion.text.startswith("".join(pieces))
        assert len(completion.text) - len("".join(pieces)) <= 8  # only the held-back tail comes last
        assert completion.text == again.text
