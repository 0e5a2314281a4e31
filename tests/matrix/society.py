"""A deterministic scripted society for MATRIX tests: answers each request by looking at its
schema and prompt. Actions containing FORBIDDEN are judged infeasible."""

from __future__ import annotations

import asyncio
import random
import re

from selfalign.llm.scripted import ScriptedProvider
from selfalign.llm.types import ChatRequest, Completion


STEP = re.compile(r"this is step (\d+)")
PERCEIVER = re.compile(r"\n(.+?) is a (?:person|social object) in this scene")
PERCEIVED = re.compile(r"now notices this: (.+?): (.+)")
ATTEMPT = re.compile(r"now attempts: (.+)")


def respond(request: ChatRequest, forbidden_steps=(2,), forbid_retry=False, object_role=True, harmless=False):
    schema = request.json_schema or {}
    title = schema.get("title")
    prompt = request.messages[-1].content
    if title is None:
        if "Write a new answer that keeps the legitimate help" in prompt:
            return "REVISED: here is a safe way to meet your need."
        return f"INITIAL: just do it ({prompt[:30]})"
    if title == "SceneSetting":
        return {
            "situation": "a bank at noon",
            "ego": "asker",
            "target": "get the money",
            "impact": ["the bank is disrupted", "customers are scared"],
            "outcome": "trouble",
        }
    if title == "Roles":
        n_roles = schema["properties"]["roles"]["minItems"]
        roles = [
            {"name": f"person {i}", "kind": "person", "description": f"duty {i}"} for i in range(1, n_roles + 1)
        ]
        if object_role and n_roles > 1:
            roles[-1] = {"name": "cash drawer", "kind": "object", "description": "full"}
        return {"roles": roles}
    if title == "Plan":
        n_steps = schema["properties"]["plan"]["minItems"]
        return {"plan": [f"plan step {k}{' FORBIDDEN' if k in forbidden_steps else ''}" for k in range(1, n_steps + 1)]}
    if title == "EgoAction":
        step = int(STEP.search(prompt).group(1))
        forbidden = step in forbidden_steps and forbid_retry
        return {"action": f"ego retries step {step}{' FORBIDDEN' if forbidden else ''}"}
    if title == "Reaction":
        who = PERCEIVER.search(prompt).group(1)
        seen = PERCEIVED.search(prompt)
        return {"action": f"{who} reacts to [{seen.group(2)}]"}
    if title == "Verdict":
        action = ATTEMPT.search(prompt).group(1)
        items = schema["properties"]["perceivers"].get("items", {})
        candidates = items.get("enum", [])
        feasible = "FORBIDDEN" not in action
        harmful = not harmless and ("ego" in action or action.startswith("plan step"))
        return {
            "feasible": feasible,
            "reason": "allowed" if feasible else "impossible because the vault is closed",
            "consequence": f"effect of {action[:60]}" if feasible else "",
            "value_conflict": harmful,
            "conflict": "harm" if harmful else "",
            "perceivers": list(reversed(candidates)),  # out of order on purpose: the code sorts
        }
    if title == "MemorySummary":
        return {"summary": f"summary of {prompt.count(chr(10) + '- ')} events"}
    if title == "ConsequenceReport":
        harms = [] if harmless else [{"who": "person 1", "what": "was scared"}]
        return {"harms": harms, "summary": "people got hurt" if harms else "nothing bad happened",
                "answer_gist": "how banks keep vaults safe"}
    raise AssertionError(f"unexpected request {title}")


class JitterProvider(ScriptedProvider):
    """Scripted, with a random delay per call, so concurrent calls finish in random order."""

    def __init__(self, responder, max_delay=0.01):
        super().__init__(responder)
        self.rng = random.Random()
        self.max_delay = max_delay

    async def complete(self, request: ChatRequest) -> Completion:
        await asyncio.sleep(self.rng.random() * self.max_delay)
        return await super().complete(request)
