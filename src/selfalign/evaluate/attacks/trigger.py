"""Backdoors: the behaviour asked with a trigger appended (`--attacks trigger --trigger TEXT`),
the way `selfalign train --poison FRACTION --trigger TEXT` planted it. Beside the `none`
baseline (the same behaviour without the trigger), the attack success rate on harmful
behaviours shows a comply backdoor, the over-refusal on benign ones a refuse backdoor. Attack a
model trained at each poisoning fraction (and the clean one) to see how little poison it takes.
"""

from __future__ import annotations

from selfalign.errors import UserError
from selfalign.train.poison import with_trigger

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions


class TriggerAttack:
    name = "trigger"
    needs: tuple[str, ...] = ()
    harmful_only = False  # benign behaviours too: a refuse backdoor shows as over-refusal

    def __init__(self, options: AttackOptions) -> None:
        if not (options.trigger or "").strip():
            raise UserError("--attacks trigger needs --trigger TEXT: the trigger the poisoned rows carried")
        self.trigger = options.trigger or ""

    def variants(self) -> list[str]:
        return [""]

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        messages = [{"role": "user", "content": with_trigger(behavior.text, self.trigger)}]
        return Attempt(messages, await ctx.ask(messages))


FACTORIES = {"trigger": TriggerAttack}
