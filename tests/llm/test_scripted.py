import itertools

import pytest

from selfalign.llm.scripted import word_count


@pytest.mark.parametrize(
    "text",
    ["", " ", "one", "  two  words ", "a\tb\nc\x0bd\x0ce\rf", "a\x1cb\x1dc\x1ed\x1ff", "x\x85y z", "é  è", "a\u3000b", "\x00 \x7f"],
)
def test_word_count_is_the_count_str_split_gives(text):
    assert word_count(text) == len(text.split())


def test_word_count_agrees_with_str_split_on_every_short_ascii_string_of_words_and_separators():
    """Every ASCII character either separates words for str.split or belongs to one: strings of
    up to four characters drawn from both kinds (all of str.split's separators) count alike."""
    separators = [chr(i) for i in range(128) if chr(i).isspace()]
    alphabet = separators + ["a", "\x00", "~", "\x1b"]
    for n in range(5):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            assert word_count(text) == len(text.split()), repr(text)
