"""What crosses between the `--ray` driver and its actors (llm/ray_wire.py): every request kind
comes back equal to what was sent, field for field, and outcomes keep their answers and errors."""

from selfalign.llm.errors import TransientError
from selfalign.llm.ray_wire import pack_calls, pack_outcomes, portable, unpack_calls, unpack_outcomes
from selfalign.llm.types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, Message, Sampling, TextRequest


def test_every_request_kind_comes_back_equal_field_for_field():
    sampling = Sampling(temperature=0.3, top_p=0.9, max_tokens=7, stop=("\n\n", "User:"), seed=11,
                        logit_bias={5: -100.0}, ngram_penalties={2: 0.5})
    chat = ChatRequest((Message(role="system", content="Be kind."), Message(role="user", content="Hi ✓")),
                       sampling, {"type": "object", "properties": {"a": {"type": "string"}}})
    calls = [(0, "complete", chat), (1, "complete_text", TextRequest("Once upon", Sampling())),
             (2, "loglikelihood", LoglikelihoodRequest("Q: 2+2? A:", (" 4", " 5")))]

    back = unpack_calls(pack_calls(calls))

    assert back == calls
    rebuilt = back[0][2]
    assert type(rebuilt.sampling) is Sampling and rebuilt.sampling.model_dump() == sampling.model_dump()
    assert [type(m) for m in rebuilt.messages] == [Message, Message]
    assert rebuilt.messages[1].model_dump() == {"role": "user", "content": "Hi ✓"}


def test_outcomes_keep_answers_and_errors():
    part = [(3, True, Completion("fine", 4, 1, "stop")), (4, True, [Loglikelihood(-1.5, True)]),
            (5, False, TransientError("the engine is busy"))]

    back = unpack_outcomes(pack_outcomes(part))

    assert back[:2] == part[:2]
    assert type(back[2][2]) is TransientError and str(back[2][2]) == "the engine is busy"


def test_an_error_that_cannot_be_rebuilt_crosses_as_its_words():
    class NeedsTwo(Exception):
        def __init__(self, code, why):
            super().__init__(f"{code}: {why}")

    crossed = portable(NeedsTwo(7, "no room"))

    assert type(crossed) is RuntimeError and str(crossed) == "NeedsTwo: 7: no room"
    assert type(portable(ValueError("plain"))) is ValueError
