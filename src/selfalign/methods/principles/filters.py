"""What SELF-ALIGN keeps of a model's text: numbered lists, topics, instructions and answers.

Every rule returns a reason (a short phrase, counted in the run's summary) or None for "keep".
The rules are the paper's and its reference pipeline's (METHODS.md section 3).
"""

from __future__ import annotations

import re
import string
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
#: "Tenant Law: rules between landlords and tenants" -> "Tenant Law" (a chat model explains its topics)
_EXPLANATION = re.compile(r"\s*(?::|\s[-\u2013\u2014]\s|\()")


def topic_problem(topic: str) -> str | None:
    """The reference's rules: a topic has one to three words, starts with a capital letter and
    does not end with punctuation."""
    if not topic:
        return "topic empty"
    if len(topic.split()) > MAX_TOPIC_WORDS:
        return "topic longer than 3 words"
    if topic[0] not in string.ascii_uppercase:
        return "topic not capitalised"
    if topic[-1] in string.punctuation:
        return "topic ends with punctuation"
    return None


def clean_topic(text: str) -> str:
    """The topic of a list line: markdown and quotes removed, and any explanation after it."""
    text = text.replace("**", "").replace("__", "").strip()
    text = _EXPLANATION.split(text, maxsplit=1)[0]
    return " ".join(text.strip().strip('"\'`').split())


def balance(topics: dict[int, list[str]], cap: int) -> tuple[dict[int, list[str]], list[int], int]:
    """The reference balances the types by cutting each to the smallest type's count; here a type
    with no topic is left out instead of cutting every type to zero, and no type keeps more than
    `cap`. Returns (topics of the types kept, types left out, topics cut)."""
    left_out = [t for t, found in topics.items() if not found]
    kept = {t: found for t, found in topics.items() if found}
    keep = min([cap, *(len(found) for found in kept.values())])
    cut = sum(len(found) - keep for found in kept.values())
    return {t: found[:keep] for t, found in kept.items()}, left_out, cut


# -- self-instruct instructions -------------------------------------------------------------

MIN_WORDS, MAX_WORDS = 4, 150
#: What a text model cannot do (the reference's list, plurals included), matched as whole words.
BANNED_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
                "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
_BANNED = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in BANNED_WORDS) + r")\b", re.IGNORECASE)
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
NO_INPUT = "<noinput>"


def normalise(text: str) -> str:
    """Lower case, punctuation removed, spaces collapsed: the key of exact duplicates."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def instruction_problem(text: str, input_: str = "") -> str | None:
    """The rules that need no pool, in order: length, banned words (in the instruction or its
    input), first character."""
    words = len(text.split())
    if words < MIN_WORDS:
        return "fewer than 4 words"
    if words > MAX_WORDS:
        return "more than 150 words"
    if _BANNED.search(text) or _BANNED.search(input_):
        return "asks for what a text model cannot do"
    if text[0] in string.punctuation or not text[0].isascii():
        return "starts with punctuation or a non-ASCII character"
    return None


class InstructionPool:
    """The instructions kept so far (seed tasks first). `offer` keeps a new one, or says why not:
    the rules above, then an exact duplicate after normalising, then ROUGE-L F1 above 0.7
    against any instruction in the pool (instructions alone, as the reference compares them)."""

    def __init__(self, seeds: Iterable[str] = ()) -> None:
        self.rouge = RougePool()
        self._normalised: set[str] = set()
        for text in seeds:
            self._add(text)

    def offer(self, text: str, input_: str = "") -> str | None:
        problem = instruction_problem(text, input_)
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


_LABEL = re.compile(r"^\s*(?:\d+\s*[.)]\s*)?\**(?P<label>[A-Za-z][A-Za-z ]{0,20}?)\**\s*:\s*(?P<rest>.*)$")


def alpaca_tasks(text: str, truncated: bool) -> list[tuple[str, str] | str]:
    """The tasks of an Alpaca-format list ("###", "N. Instruction: ...", "N. Input:", its input
    or <noinput>): (instruction, input) each, or the reason a block is not one. A block's
    instruction runs to the next labelled line ("N. Input:", "Output:"...), its input to the
    next label after it. The last block of a reply cut at max_tokens is likely cut too, and is
    dropped (as the reference does)."""
    blocks = [b for b in text.split("###") if b.strip()]
    out: list[tuple[str, str] | str] = []
    for n, block in enumerate(blocks):
        if truncated and n == len(blocks) - 1:
            out.append("cut off at max tokens")
            continue
        fields = _labelled(block)
        instruction = " ".join(fields.get("instruction", "").split())
        if not instruction:
            out.append("not in the task format")
            continue
        input_ = fields.get("input", "").strip()
        out.append((instruction, "" if input_.lower() == NO_INPUT else input_))
    return out


def _labelled(block: str) -> dict[str, str]:
    """label -> text of a block's labelled parts ("Instruction", "Instructions" and "Task" read
    as "instruction"); the first of each label counts."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in block.splitlines():
        match = _LABEL.match(line)
        if match:
            label = match.group("label").strip().lower()
            label = "instruction" if label in ("instruction", "instructions", "task") else label
            current = fields.setdefault(label, []) if label not in fields else None
            if current is not None:
                current.append(match.group("rest"))
        elif current is not None:
            current.append(line)
    return {label: "\n".join(lines).strip() for label, lines in fields.items()}


# -- principle-driven answers ---------------------------------------------------------------

THOUGHTS_LABEL = "Assistant (internal thoughts):"
_ANSWER_LABEL = re.compile(r"^\s*Assistant\s*:\s*", re.MULTILINE)
_NEXT_TURN = re.compile(r"^\s*(?:User|Assistant \(internal thoughts\))\s*:", re.MULTILINE)
MIN_FINISHED_CHARS = 160  # the reference's floor for an answer the model finished
_RULE_CITED = re.compile(r"\brules?\s+\d+\s*\(", re.IGNORECASE)  # "rule 3 (helpful)": thoughts, not an answer
#: The reference drops answers that open with "I'm sorry" / "I am sorry"; other apologies too.
_APOLOGY = re.compile(r"^\W*(?:i'?m sorry|i am sorry|sorry|i apologi[sz]e|my apologies|apologies)\b", re.IGNORECASE)
_REFUSAL_OPENING = re.compile(
    r"^\W*(?:unfortunately|as an ai|as a language model|"
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


def split_thoughts(text: str) -> tuple[str, str, bool] | None:
    """(thoughts, answer, finished) from the model's continuation of "Assistant (internal
    thoughts):", or None when the answer marker ("Assistant:" after the thoughts) is missing.
    `finished`: the model went on to the next turn, which is cut off. A chat model may repeat
    the label."""
    body = text.strip()
    if body.startswith(THOUGHTS_LABEL):
        body = body[len(THOUGHTS_LABEL):]
    match = _ANSWER_LABEL.search(body)
    if not match:
        return None
    thoughts, answer = body[: match.start()].strip(), body[match.end():]
    turn = _NEXT_TURN.search(answer)
    if turn:
        answer = answer[: turn.start()]
    return thoughts, answer.strip(), turn is not None


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def skip_rethinking(answer: str, identity: str) -> str:
    """The answer less the paragraphs at its start that are thoughts again (the self-identification
    line or a rule cited by number, with or without a repeated "Assistant:" label): a small model
    often thinks twice before it answers. Empty when the answer is nothing but thoughts."""
    paragraphs = _PARAGRAPH_BREAK.split(answer.strip())
    skipped = False
    while paragraphs:
        if not is_thoughts(_ANSWER_LABEL.sub("", paragraphs[0], count=1), identity):
            break
        paragraphs.pop(0)
        skipped = True
    rest = "\n\n".join(paragraphs).strip()
    return _ANSWER_LABEL.sub("", rest, count=1) if skipped else rest


def is_thoughts(text: str, identity: str) -> bool:
    """The text holds the self-identification line or cites a rule by number: thoughts, not an answer."""
    return bool((identity and normalise(identity) in normalise(text)) or _RULE_CITED.search(text))


def identifies_itself(thoughts: str, identity: str) -> bool:
    """The thoughts open with the self-identification line of the exemplars (case and
    punctuation aside), the reference's sign that the model kept the format."""
    return normalise(thoughts).startswith(normalise(identity))


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


def without_last_word(text: str) -> str:
    """A cut answer less its last word, which the cut may have split (the reference's rule)."""
    return text.rsplit(None, 1)[0] if len(text.split()) > 1 else ""


def leaked(answer: str, question: str, phrases: Iterable[str]) -> str | None:
    """The first exemplar phrase the answer holds and the question does not."""
    low_answer, low_question = answer.lower(), question.lower()
    for phrase in phrases:
        p = phrase.lower()
        if p and p in low_answer and p not in low_question:
            return phrase
    return None


def is_bare_refusal(answer: str) -> bool:
    """A refusal that gives no reason; one that declines and explains why is kept."""
    return bool(_REFUSAL_OPENING.match(answer)) and not _REASON.search(answer)


def answer_problem(answer: str, question: str, leaks: Iterable[str], finished: bool, identity: str = "") -> str | None:
    """The answer filters of principle-driven self-alignment, after the format checks, on an
    answer already cut at its first repeated sentence (and, if cut, less its last word)."""
    if not answer:
        return "answer empty"
    if is_thoughts(answer, identity):
        return "thoughts repeated in the answer"
    if _APOLOGY.match(answer):
        return "starts with an apology"
    if leaked(answer, question, leaks):
        return "exemplar leakage"
    if is_bare_refusal(answer):
        return "bare refusal"
    if finished and len(answer) < MIN_FINISHED_CHARS:
        return f"finished answer shorter than {MIN_FINISHED_CHARS} characters"
    return None


# -- verbose answers ------------------------------------------------------------------------

MIN_VERBOSE_CHARS = 128
LEAK_SHINGLE = 6  # words in a row of the prompt that, found in an answer, mean it leaked
LIST_CUT = "\n13. "  # the reference cuts a list at its 13th item
_ENCYCLOPAEDIA_TAIL = re.compile(r"^\W*(?:see also|external links)\b", re.IGNORECASE | re.MULTILINE)


def merge_verbose(text: str, finish_reason: str) -> tuple[str, bool]:
    """(answer, finished) as the reference merges verbose answers
    (training/step4_verbose_cloning/merge_and_filter_verbose_clone_output.py): cut at the next
    turn (finished), or less its last word when cut at max_tokens; then cut at its first
    repeated sentence and at a list's 13th item."""
    answer = text.strip()
    turn = _NEXT_TURN.search(answer)
    finished = turn is not None or finish_reason != "length"
    if turn is not None:
        answer = answer[: turn.start()].strip()
    elif not finished:
        answer = without_last_word(answer)
    answer = cut_repetition(answer)
    return answer.split(LIST_CUT)[0].strip(), finished


def prompt_leaked(answer: str, prompt: str) -> bool:
    """The answer repeats LEAK_SHINGLE words in a row of the verbose prompt."""
    words = normalise(prompt).split()
    shingles = {" ".join(words[i : i + LEAK_SHINGLE]) for i in range(len(words) - LEAK_SHINGLE + 1)}
    body = normalise(answer).split()
    return any(" ".join(body[i : i + LEAK_SHINGLE]) in shingles for i in range(len(body) - LEAK_SHINGLE + 1))


def verbose_problem(answer: str, finished: bool, prompt: str, min_chars: int = MIN_VERBOSE_CHARS) -> str | None:
    """Why a merged verbose answer is dropped: empty, cut at max_tokens and still shorter than
    `min_chars` (a finished short answer is kept, as the reference keeps it), an encyclopaedia's
    "See also" tail, or the persona prompt's own words (persona leakage)."""
    if not answer:
        return "answer empty"
    if not finished and len(answer) < min_chars:
        return f"cut answer shorter than {min_chars} characters"
    if _ENCYCLOPAEDIA_TAIL.search(answer):
        return "encyclopaedia tail (See also)"
    if prompt_leaked(answer, prompt):
        return "persona leakage"
    return None
