"""What an attack is: a small object that, for one behaviour (and one of its variants), talks to
the target model and returns the `Attempt` that is judged. Attacks know the model interface and
their own data files, nothing of the runner or the store.

    class MyAttack:
        name = "my-attack"
        needs = ()                         # any of "attacker", "judge", "hf"
        harmful_only = True                # benign behaviours are only asked plainly
        own_behaviors = None               # or a list of Behavior run instead of the file's
        def variants(self) -> list[str]:   # [""] for an attack without variants
            return [""]
        async def run(self, ctx, behavior, variant) -> Attempt: ...

    register_attack("my-attack", lambda options: MyAttack())

or, from an installed package, an entry point in the `selfalign.attacks` group naming such a
factory; `--attacks my-attack` then finds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from selfalign.llm import Model
from selfalign.methods.seeding import derive_seed
from selfalign.methods.prompts import Prompts

from .options import AttackOptions


@dataclass(frozen=True)
class Behavior:
    """One thing the attacks try to make the model do (or, when benign, what it should just do)."""

    id: str  # "000012", the row's position in the behaviours file
    text: str
    harmful: bool = True
    category: str | None = None
    target: str | None = None  # how a compliant answer starts ("Sure, here is ..."), for PAIR and GCG

    @property
    def target_text(self) -> str:
        return self.target or f"Sure, here is how to {self.text[0].lower()}{self.text[1:].rstrip('.?!')}"


@dataclass
class Attempt:
    """What an attack sent and got back. `judged` is the text the scorers read (an encoded answer
    decoded); `success`, when the attack decides it itself (a leaked canary), replaces the scorers;
    so do `scores` ({name: {"metric", "value", "success"}}), an attack's own figures (exposure)."""

    messages: list[dict[str, str]]
    answer: str
    judged: str | None = None
    success: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "answer": self.answer, "judged": self.judged_text, "success": self.success,
                "details": self.details}

    @property
    def judged_text(self) -> str:
        return self.answer if self.judged is None else self.judged


@dataclass
class AttackContext:
    """What an attack may use for one item: the target and, where it needs them, the attacker and
    the judge; the generation settings; the item's id (for seeds)."""

    target: Model
    attacker: Model | None
    judge: Model | None
    options: AttackOptions
    item_id: str
    prompts: Prompts

    def seed(self, *step: object) -> int:
        return derive_seed(self.options.seed, self.item_id, *step)

    async def ask(self, messages: list[dict[str, str]], *step: object) -> str:
        """The target's answer to `messages`, under the run's generation settings."""
        result = await self.target.chat(
            messages, temperature=self.options.temperature, max_tokens=self.options.max_tokens, seed=self.seed("target", *step)
        )
        return result.text.strip()


class Attack(Protocol):
    name: str
    needs: tuple[str, ...]
    harmful_only: bool

    def variants(self) -> list[str]: ...

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt: ...


AttackFactory = Callable[[AttackOptions], Attack]
