"""The no-attack baseline: the behaviour asked plainly. On benign behaviours it measures
over-refusal; on harmful ones it is what every attack is compared with."""

from __future__ import annotations

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions


class Plain:
    name = "none"
    needs: tuple[str, ...] = ()
    harmful_only = False

    def variants(self) -> list[str]:
        return [""]

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        messages = [{"role": "user", "content": behavior.text}]
        return Attempt(messages, await ctx.ask(messages))


FACTORIES = {"none": lambda options: Plain()}
