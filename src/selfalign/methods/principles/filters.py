"""What SELF-ALIGN keeps of a model's text: numbered lists, topics, instructions and answers.

Every rule returns a reason (a short phrase, counted in the run's summary) or None for "keep".
The rules are the paper's and its reference pipeline's (METHODS.md section 3).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable

from .rouge import RougePool

# -- numbered lists -------------------------------------------------------------------------

_NUMBERED = re.compile(r"^\s*(\d{1,4})\s*[.)]\s*(.*?)\s*$")
_BULLET = re.compile(r"^\s*[-*\u2022]\s+(.*?)\s*$")


def numbered_lines(text: str, first: int | None = 1, bullets: bool = False) -> list[tuple[int, str]]:
    """(number, text) of each numbered line: "3. Paris" -> (3, "Paris"). The prompt ends with
    "first." for the model to continue, so a first line without a number is item `first`
    (None: a chat model's reply, whose first line is rather a preface, "Here are ...").
    With `bullets`, a "- item" line counts too, numbered after the item before it (chat
    models often answer a numbered list with bullets)."""
    out: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines()):
        match = _NUMBERED.match(line)
        bullet = _BULLET.match(line) if bullets and not match else None
        if match:
            if match.group(2):
                out.append((int(match.group(1)), match.group(2)))
        elif bullet:
            out.append((out[-1][0] + 1 if out else first or 1, bullet.group(1)))
        elif n == 0 and line.strip() and first is not None:
            out.append((first, line.strip()))
    return out


# -- red-teaming topics ---------------------------------------------------------------------

MAX_TOPIC_WORDS = 3
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 '&\-.]*$")


def topic_problem(topic: str) -> str | None:
    """A topic is a short capitalised noun phrase: at most 3 words, starting with a capital."""
    words = topic.split()
    if len(words) > MAX_TOPIC_WORDS:
        return "topic longer than 3 words"
    if not _TOPIC_CHARS.match(topic) or topic.endswith((".", "-")) or not words[0][0].isupper():
        return "topic not a capitalised noun phrase"
    return None


def clean_topic(text: str) -> str:
    return " ".join(text.strip().strip('"*\u2013\u2014-').split())


def balance(topics: dict[int, list[str]]) -> tuple[dict[int, list[str]], int]:
    """Every type cut to the smallest type's count (the paper balances types); the topics cut."""
    keep = min((len(t) for t in topics.values()), default=0)
    cut = sum(len(t) - keep for t in topics.values())
    return {k: t[:keep] for k, t in topics.items()}, cut


# -- self-instruct instructions -------------------------------------------------------------

MIN_WORDS, MAX_WORDS = 4, 150
#: What a text model cannot do (the self-instruct rule), matched as whole words.
BANNED_WORDS = ("image", "graph", "picture", "file", "map", "draw", "plot", "go to", "video", "audio", "music",
                "flowchart", "diagram")
_BANNED = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in BANNED_WORDS) + r")\b", re.IGNORECASE)
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    """Lower case, punctuation removed, spaces collapsed: the key of exact duplicates."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def instruction_problem(text: str) -> str | None:
    """The rules that need no pool, in order: length, banned words, first character."""
    words = len(text.split())
    if words < MIN_WORDS:
        return "fewer than 4 words"
    if words > MAX_WORDS:
        return "more than 150 words"
    if _BANNED.search(text):
        return "asks for what a text model cannot do"
    if text[0] in string.punctuation or not text[0].isascii():
        return "starts with punctuation or a non-ASCII character"
    return None


class InstructionPool:
    """The instructions kept so far (seed tasks first). `offer` keeps a new one, or says why not:
    the rules above, then an exact duplicate after normalising, then ROUGE-L F1 above 0.7
    against any instruction in the pool."""

    def __init__(self, seeds: Iterable[str] = ()) -> None:
        self.rouge = RougePool()
        self._normalised: set[str] = set()
        for text in seeds:
            self._add(text)

    def offer(self, text: str) -> str | None:
        problem = instruction_problem(text)
        if problem:
            return problem
        if normalise(text) in self._normalised:
            return "duplicate"
        if self.rouge.too_similar(text):
            return "ROUGE-L above 0.7 against the pool"
        self._add(text)
        return None

    def _add(self, text: str) -> None:
        self._normalised.add(normalise(text))
        self.rouge.add(text)


# -- principle-driven answers ---------------------------------------------------------------

THOUGHTS_LABEL = "Assistant (internal thoughts):"
_ANSWER_LABEL = re.compile(r"^\s*Assistant\s*:\s*", re.MULTILINE)
_NEXT_TURN = re.compile(r"^\s*(?:User|Assistant \(internal thoughts\))\s*:", re.MULTILINE)
MIN_ANSWER_WORDS = 5
_REFUSAL_OPENING = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry|i apologi[sz]e|my apologies|unfortunately|as an ai|as a language model|"
    r"i (?:can ?not|can't|won't|will not|am unable to|am not able to|must decline|refuse))",
    re.IGNORECASE,
)
#: Words with which a refusal gives its reason (a refusal without any of them is bare).
_REASON = re.compile(
    r"(?:,\s*so\b)|\b(?:because|since|as it|as this|would|could|might|may|harm\w*|danger\w*|illegal|unsafe|risk\w*|hurt|"
    r"law\w*|crime|criminal|privacy|private|personal information|real[- ]time|internet|up-to-date|"
    r"instead|recommend|suggest|please)\b",
    re.IGNORECASE,
)


def split_thoughts(text: str) -> tuple[str, str] | None:
    """(thoughts, answer) from the model's continuation of "Assistant (internal thoughts):",
    or None when the format is lost (no "Assistant:" line). A chat model may repeat the label."""
    body = text.strip()
    if body.startswith(THOUGHTS_LABEL):
        body = body[len(THOUGHTS_LABEL):]
    match = _ANSWER_LABEL.search(body)
    if not match:
        return None
    thoughts, answer = body[: match.start()].strip(), body[match.end():]
    turn = _NEXT_TURN.search(answer)
    if turn:  # the model went on to write the next turn itself
        answer = answer[: turn.start()]
    return thoughts, answer.strip()


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def cut_repetition(text: str) -> str:
    """The text up to its first repeated sentence or line (a looping model repeats itself)."""
    seen: set[str] = set()
    for match in _SENTENCE.finditer(text):
        key = normalise(match.group())
        if key in seen:
            return text[: match.start()].strip()
        if key:
            seen.add(key)
    return text.strip()


def leaked(answer: str, question: str, phrases: Iterable[str]) -> str | None:
    """The first exemplar phrase the answer holds and the question does not."""
    low_answer, low_question = answer.lower(), question.lower()
    for phrase in phrases:
        p = phrase.lower()
        if p and p in low_answer and p not in low_question:
            return phrase
    return None


def is_bare_refusal(answer: str) -> bool:
    """An apology or refusal that gives no reason; one that declines and explains why is kept."""
    return bool(_REFUSAL_OPENING.match(answer)) and not _REASON.search(answer)


def answer_problem(answer: str, question: str, leaks: Iterable[str]) -> str | None:
    """The answer filters of principle-driven self-alignment, after the format check."""
    if leaked(answer, question, leaks):
        return "exemplar leakage"
    if is_bare_refusal(answer):
        return "bare refusal"
    if len(answer.split()) < MIN_ANSWER_WORDS:
        return "too short"
    return None


# -- verbose answers ------------------------------------------------------------------------

MIN_VERBOSE_CHARS = 128
LEAK_SHINGLE = 6  # words in a row of the prompt that, found in an answer, mean it leaked


def is_repetitive(text: str, n: int = 4, limit: int = 3) -> bool:
    """Some word n-gram occurs more than `limit` times, or a sentence is repeated."""
    words = normalise(text).split()
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return (bool(grams) and max(grams.values()) > limit) or cut_repetition(text) != text.strip()


def prompt_leaked(answer: str, prompt: str) -> bool:
    """The answer repeats LEAK_SHINGLE words in a row of the verbose prompt."""
    words = normalise(prompt).split()
    shingles = {" ".join(words[i : i + LEAK_SHINGLE]) for i in range(len(words) - LEAK_SHINGLE + 1)}
    body = normalise(answer).split()
    return any(" ".join(body[i : i + LEAK_SHINGLE]) in shingles for i in range(len(body) - LEAK_SHINGLE + 1))


def verbose_problem(answer: str, finish_reason: str, prompt: str, min_chars: int = MIN_VERBOSE_CHARS) -> str | None:
    if finish_reason == "length":
        return "truncated"
    if len(answer.strip()) < min_chars:
        return f"shorter than {min_chars} characters"
    if is_repetitive(answer):
        return "repetitive"
    if prompt_leaked(answer, prompt):
        return "prompt leakage"
    return None
