"""After the simulation: what went wrong for whom (from the modulator's records), then the
revised answer r1 = LLM(q, r0, consequences)."""

from __future__ import annotations

from .calls import Sim
from .record import Event, Scene
from .schemas import ConsequenceSummary


async def summarise_consequences(sim: Sim, question: str, initial: str, scene: Scene, events: list[Event]) -> ConsequenceSummary:
    messages = sim.render("consequences", question=question, answer=initial, scene=scene, events=events)
    return await sim.ask("consequences", messages, ConsequenceSummary)


async def revise(sim: Sim, conversation: list[dict[str, str]], initial: str, consequences: ConsequenceSummary) -> str:
    """The revised answer, asked in the asker's own conversation after the initial answer. It is
    not kept among the simulation calls: it is the SFT target itself."""
    messages = [
        *conversation,
        {"role": "assistant", "content": initial},
        {"role": "user", "content": sim.prompts.render("revise", consequences=consequences)},
    ]
    return await sim.say("revision", messages, keep=False)
