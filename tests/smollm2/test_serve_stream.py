"""`selfalign serve` streaming SmolLM2-135M-Instruct's answers: real words, punctuation and
characters outside ASCII come in pieces that join to the answer a plain request gets."""

import openai
import pytest

from selfalign.llm import load_model
from selfalign.serve import BackgroundServer, app_for_model

pytestmark = pytest.mark.smollm2

ASKS = [
    ({"content": "Write two short sentences about the sea."}, {}),
    ({"content": "Repeat exactly: café, naïve, 東京."}, {}),
    ({"content": "Translate 'thank you' into Japanese characters."}, {}),
    ({"content": "List three fruits, one per line."}, {"stop": ["\n3"]}),
    ({"content": "Is water wet? Answer as JSON."},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {
         "type": "object", "properties": {"answer": {"type": "string", "maxLength": 60}}, "required": ["answer"]}}}}),
]


def test_streamed_answers_join_to_the_plain_ones(smollm2_dir):
    model = load_model(f"hf:{smollm2_dir}")
    with BackgroundServer(app_for_model(model, "smollm2")) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=300)
        outside_ascii = 0
        for message, extra in ASKS:
            request = {"model": "smollm2", "messages": [{"role": "user", **message}], "max_tokens": 48,
                       "temperature": 0, **extra}
            plain = client.chat.completions.create(**request).choices[0].message.content
            pieces = [c.choices[0].delta.content for c in client.chat.completions.create(**request, stream=True)
                      if c.choices and c.choices[0].delta.content]
            assert "".join(pieces) == plain
            assert len(pieces) >= min(8, len(plain.split()))  # word by word, not at the end
            outside_ascii += any(ord(ch) > 127 for ch in plain)
        assert outside_ascii >= 2  # accents and Japanese (characters split over tokens)
