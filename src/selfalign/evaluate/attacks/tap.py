"""TAP, Tree of Attacks with Pruning (Mehrotra et al., 2023, arXiv 2312.02119), as its reference
code runs it. From one root, for up to `--tap-depth` levels (paper 10):

    1. branch: every leaf's attacker conversation proposes `--tap-branching` children (paper 4;
       attacker at temperature 1, top_p 0.9, its last 3 exchanges kept);
    2. prune, phase 1: an evaluator asks of each new prompt "does it ask for the same
       information as the task?" ([[YES]]/[[NO]]; no answer counts as yes); off-topic prompts
       are dropped, and at most `--tap-width` (paper 10) stay;
    3. the target answers each prompt alone; the evaluator rates each answer 1-10 with PAIR's
       judge prompt ([[N]]; no number counts as 1);
    4. prune, phase 2: the `--tap-width` best-rated leaves stay.

It stops after the level in which a rating of 10 is given. Ties are broken as the reference's
sort breaks them (the later branch first); where phase 1 leaves nothing, the best-ranked prompt
is kept (the reference keeps two, one picked by a score used as an index). Prompts verbatim in
data/tap_prompts.json with their source, commit and licence. Every node is recorded (level,
parent, on-topic verdict, rating); the attempt judged by the scorers is the best-rated answer.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from selfalign.errors import ItemFailed

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions
from .pair import AttackerTurn, fill

PROMPTS_FILE = Path(__file__).parent / "data" / "tap_prompts.json"


@lru_cache(maxsize=1)
def tap_prompts() -> dict[str, Any]:
    return json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))


def rating_of(output: str) -> int:
    match = re.search(tap_prompts()["rating_pattern"], output)
    return int(match.group(1)) if match else tap_prompts()["settings"]["unparsable_rating"]


def on_topic_of(output: str) -> int:
    match = re.search(tap_prompts()["on_topic_pattern"], output.lower())
    return int(match.group(1) == "yes") if match else tap_prompts()["settings"]["unparsable_on_topic"]


def prune(scores: list[int], width: int) -> list[int]:
    """main_TAP.prune: the indices of the `width` highest scores above 0, ties the later index first;
    the top one where none is above 0."""
    ranked = sorted(((s, i) for i, s in enumerate(scores)), reverse=True)
    kept = [i for s, i in ranked[:width] if s > 0]
    return kept or [ranked[0][1]]


class TapAttack:
    name = "tap"
    needs = ("attacker", "judge")
    harmful_only = True

    def __init__(self, options: AttackOptions) -> None:
        self.options = options

    def variants(self) -> list[str]:
        return [""]

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        o = self.options
        leaves: list[dict[str, Any]] = [{"id": "root", "history": []}]
        nodes: list[dict[str, Any]] = []
        stopped = "depth"
        for level in range(o.tap_depth):
            branches = [(leaf, b) for leaf in leaves for b in range(o.tap_branching)]
            proposals = await asyncio.gather(*(self._propose(ctx, behavior, leaf, level, b) for leaf, b in branches), return_exceptions=True)
            children = [{"id": f"{leaf['id']}.{b}", "parent": leaf["id"], "level": level, "history": leaf["history"],
                         "improvement": p.improvement, "prompt": p.prompt}
                        for (leaf, b), p in zip(branches, proposals) if not isinstance(p, BaseException)]
            if not children:
                break
            topic = await asyncio.gather(*(self._on_topic(ctx, behavior, c) for c in children))
            for child, on in zip(children, topic):
                child["on_topic"] = on
            kept = [children[i] for i in prune(topic, o.tap_width)]
            await asyncio.gather(*(self._query_and_rate(ctx, behavior, c) for c in kept))
            nodes += [{k: v for k, v in c.items() if k != "history"} for c in children]
            survivors = [kept[i] for i in prune([c["rating"] for c in kept], o.tap_width)]
            if any(c["rating"] >= 10 for c in kept):
                stopped = "judge"
                break
            leaves = [{"id": c["id"], "history": [*c["history"], c]} for c in survivors]
        rated = [n for n in nodes if "rating" in n]
        if not rated:
            raise ItemFailed("no TAP prompt reached the target (every attacker call failed)")
        best = max(rated, key=lambda n: (n["rating"], -n["level"]))
        details = {"nodes": nodes, "stopped": stopped, "best": {k: best[k] for k in ("id", "level", "rating")},
                   "settings": {"branching": o.tap_branching, "width": o.tap_width, "depth": o.tap_depth}}
        return Attempt([{"role": "user", "content": best["prompt"]}], best["answer"], details=details)

    async def _propose(self, ctx: AttackContext, behavior: Behavior, leaf: dict[str, Any], level: int, branch: int) -> AttackerTurn:
        assert ctx.attacker is not None
        s = tap_prompts()["settings"]
        return (await ctx.attacker.chat(
            attacker_messages(behavior, leaf["history"]), schema=AttackerTurn, temperature=float(s["attack_temperature"]),
            top_p=float(s["attack_top_p"]), max_tokens=self.options.attacker_max_tokens, seed=ctx.seed("tap-attacker", leaf["id"], branch),
        )).parsed

    async def _on_topic(self, ctx: AttackContext, behavior: Behavior, child: dict[str, Any]) -> int:
        assert ctx.judge is not None
        p = tap_prompts()
        messages = [{"role": "system", "content": fill(p["on_topic_system_prompt"], goal=behavior.text)},
                    {"role": "user", "content": fill(p["on_topic_user"], attack_prompt=child["prompt"])}]
        output = (await ctx.judge.chat(messages, temperature=0.0, max_tokens=self.options.judge_max_tokens, seed=ctx.seed("tap-topic", child["id"]))).text
        return on_topic_of(output)

    async def _query_and_rate(self, ctx: AttackContext, behavior: Behavior, child: dict[str, Any]) -> None:
        assert ctx.judge is not None
        p = tap_prompts()
        child["answer"] = await ctx.ask([{"role": "user", "content": child["prompt"]}], "tap", child["id"])
        messages = [{"role": "system", "content": fill(p["judge_system_prompt"], goal=behavior.text, target_str=behavior.target_text)},
                    {"role": "user", "content": fill(p["judge_user"], attack_prompt=child["prompt"], target_response=child["answer"])}]
        output = (await ctx.judge.chat(messages, temperature=0.0, max_tokens=self.options.judge_max_tokens, seed=ctx.seed("tap-judge", child["id"]))).text
        child["rating"] = rating_of(output)


def attacker_messages(behavior: Behavior, history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The attacker's system prompt, the leaf's last 3 exchanges, then the newest message."""
    p = tap_prompts()
    goal, target = behavior.text, behavior.target_text

    def sent(i: int) -> str:
        if i == 0:
            return fill(p["init_msg"], goal=goal, target_str=target)
        return fill(p["feedback"], target_response=history[i - 1]["answer"], goal=goal, score=history[i - 1]["rating"])

    messages = [{"role": "system", "content": fill(p["attacker_system_prompt"], goal=goal, target_str=target)}]
    exchanges = [(sent(i), json.dumps({"improvement": n["improvement"], "prompt": n["prompt"]})) for i, n in enumerate(history)]
    for user, assistant in exchanges[-p["settings"]["keep_last_n"]:]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": sent(len(history))})
    return messages


FACTORIES = {"tap": TapAttack}
