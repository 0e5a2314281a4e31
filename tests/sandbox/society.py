"""A deterministic scripted society for the Sandbox tests."""

from __future__ import annotations

import hashlib
import re

from selfalign.llm import Model
from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import ChatRequest


def _h(text: str, n: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % n


def society_responder(request: ChatRequest):
    """Answers by reading the prompt, so the same prompt (question, memory, feedback) always gets
    the same answer, and memory changes what agents say."""
    last = request.messages[-1].content
    if "impartial observer" in last:
        good = last.split("Answer:", 1)[1].strip().startswith("A kind")
        if "Rate its engagement" in last:
            return {"rating": 5 if good else 2, "reason": "engaging" if good else "dull"}
        return {"rating": 6 if good else 3, "reason": "observed"}
    if "Neighbour's answer:" in last:
        draft = last.split("Neighbour's answer:", 1)[1]
        rating = 2 + _h(last, 3) + (3 if draft.strip().startswith("A kind") else 0)  # 2..7, depends on the rater's memory too
        return {"rating": rating, "reason": f"rater note {_h(last, 100)}"}
    if "Revise your answer" in last:
        question = re.search(r"Question: (.*)", request.messages[0].content).group(1)
        mean = re.search(r"rated your answer ([0-9.]+)", last).group(1)
        return f"A kind revised answer to {question!r} after a mean rating of {mean}."
    question = re.search(r"Question: (.*)\Z", last).group(1)
    recalled = re.findall(r"Your answer: (.*)", last)
    memory = recalled[0][:40] if recalled else "nothing"
    return f"Draft on {question!r}, remembering: {memory}"


def scripted_model(store=None, responder=society_responder, delay: float = 0.0) -> Model:
    return Model(ScriptedProvider(responder, delay=delay), cache=store)


QUESTIONS = [
    "My coworker took credit for my work in a meeting. What should I do?",
    "I found a wallet with cash on the street. Can I keep it?",
    "How should I respond to a rude comment online?",
    "Is it okay to lie on my CV to get a job?",
    "What should I do if I see someone being bullied?",
]
