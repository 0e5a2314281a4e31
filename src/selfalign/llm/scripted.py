"""`scripted:FILE`: replays scripted answers. A test double for pipeline logic and prompt dry
runs, never the only evidence that something works.

FILE is JSONL, one rule a line, tried in order; the first whose `match` (a regular expression,
searched in the last message) fits answers:

    {"match": "Rate the draft", "reply": {"rating": 5, "reason": "kind"}}
    {"match": "", "replies": ["first answer", "second answer"]}

`reply` is a string or a JSON object (sent as its JSON text). A raw text prompt (`Model.text`)
is matched as a last message would be, and its reply cut at the first stop string. With `replies`, the answer is
picked by a hash of the request, so the same request always gets the same answer. A rule may
add `"delay": SECONDS` to stand in for a real model's latency in dry runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from selfalign.errors import InputError

from .types import ChatRequest, Completion, Message, TextRequest

Responder = Callable[[ChatRequest], "str | dict[str, Any] | list[Any]"]


@dataclass
class Rule:
    pattern: re.Pattern[str]
    replies: list[Any]
    delay: float = 0.0


class ScriptedProvider:
    constrained = False
    sampling_fields = frozenset({"logit_bias", "ngram_penalties"})  # accepted and ignored: it replays text
    continues_final_message = True  # rules see the conversation as sent, a final assistant message included

    def __init__(
        self, responder: Responder | list[Rule], name: str = "scripted", delay: float = 0.0, *, keep_requests: bool = True
    ) -> None:
        self.name = name
        self.delay = delay
        self._responder = responder if callable(responder) else _rules_responder(responder)
        self.keep_requests = keep_requests
        self.requests: list[ChatRequest] = []  # every request seen (when kept), for tests

    @classmethod
    def from_file(cls, path: str | Path) -> "ScriptedProvider":
        """A `scripted:FILE` spec's provider; it keeps no requests (a server answers without end)."""
        return cls(load_rules(path), name=f"scripted:{Path(path).name}", keep_requests=False)

    async def complete(self, request: ChatRequest) -> Completion:
        if self.keep_requests:
            self.requests.append(request)
        reply = self._responder(request)
        delay = reply.delay if isinstance(reply, _Delayed) else self.delay
        reply = reply.reply if isinstance(reply, _Delayed) else reply
        if delay:
            await asyncio.sleep(delay)
        text = reply if isinstance(reply, str) else json.dumps(reply)
        prompt_words = sum(word_count(m.content) for m in request.messages)
        return Completion(text=text, prompt_tokens=prompt_words, completion_tokens=word_count(text), finish_reason="stop")

    async def complete_text(self, request: TextRequest) -> Completion:
        """A raw prompt is answered as a chat whose one user message is the prompt (rules match
        against it), cut at the first stop string as a model's text would be."""
        completion = await self.complete(ChatRequest((Message(role="user", content=request.prompt),), request.sampling))
        cuts = [i for i in (completion.text.find(s) for s in request.sampling.stop if s) if i >= 0]
        if cuts:
            completion.text = completion.text[: min(cuts)]
        return completion

    async def close(self) -> None:
        return None


def load_rules(path: str | Path) -> list[Rule]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: scripted replies file not found")
    rules = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            replies = row["replies"] if "replies" in row else [row["reply"]]
            rules.append(Rule(re.compile(row.get("match", "")), list(replies), float(row.get("delay", 0.0))))
        except (json.JSONDecodeError, KeyError, TypeError, re.error) as exc:
            raise InputError(
                f"{path}:{lineno}: bad scripted rule ({exc}); expected "
                '{"match": "REGEX", "reply": "TEXT"} or {"match": ..., "replies": [...]}'
            ) from exc
    if not rules:
        raise InputError(f"{path}: no rules; add one JSON line like {{\"match\": \"\", \"reply\": \"hi\"}}")
    return rules


@dataclass
class _Delayed:
    reply: Any
    delay: float


def _rules_responder(rules: list[Rule]) -> Responder:
    def respond(request: ChatRequest) -> Any:
        last = request.messages[-1].content
        for rule in rules:
            if rule.pattern.search(last):
                return _Delayed(rule.replies[stable_index(request, len(rule.replies))], rule.delay)
        return ""

    return respond


#: A byte for each ASCII character: b" " where str.split splits (space, \t, \n, \x1c ...), else b"w".
_WORD_MARKS = bytes(ord(" ") if chr(i).isspace() else ord("w") for i in range(256))


def word_count(text: str) -> int:
    """`len(text.split())`, the scripted model's token count, without making each word (for a
    prompt of a few thousand characters, half the time)."""
    if not text.isascii():
        return len(text.split())
    marks = text.encode("ascii").translate(_WORD_MARKS)
    return marks.count(b" w") + marks.startswith(b"w")  # where words start


def stable_index(request: ChatRequest, n: int) -> int:
    """A deterministic choice among n, from the request's content and seed."""
    key = json.dumps([[m.content for m in request.messages], request.sampling.seed])
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % n
