"""After the simulation: what went wrong for whom (from the modulator's records) with a
harm-free gist of the initial answer; then, when harm was found, the revised answer
r1 = LLM(q, gist of r0, consequences). The revision never sees r0 itself: it is told what r0
legitimately offered and what following it would cause, and is asked to keep the help, leave
out the harm and not refer to an earlier answer, so the SFT target stands on its own. When the
simulation found no harm, r0 is kept: it is the target, and no preference pair rejects it."""

from __future__ import annotations

from selfalign.llm.types import ChatResult

from .calls import Sim
from .record import Event, Scene
from .schemas import ConsequenceReport, ConsequenceSummary


async def summarise_consequences(sim: Sim, question: str, initial: str, scene: Scene, events: list[Event]) -> ConsequenceSummary:
    messages = sim.render("consequences", question=question, answer=initial, scene=scene, events=events)
    report = await sim.ask("consequences", messages, ConsequenceReport)
    return ConsequenceSummary.model_validate(report.model_dump())


def harm_found(consequences: ConsequenceSummary, events: list[Event]) -> bool:
    """Harm is found when the summary names someone harmed or the modulator flagged an event as
    conflicting with human values."""
    return bool(consequences.harms) or any(e.value_conflict for e in events)


async def revise(sim: Sim, conversation: list[dict[str, str]], question: str, consequences: ConsequenceSummary) -> ChatResult:
    """The revised answer, in the asker's conversation with the last user turn replaced by the
    revision request. It is not kept among the simulation calls: it is the SFT target itself."""
    request = sim.prompts.render("revise", question=question, consequences=consequences)
    messages = [*conversation[:-1], {"role": "user", "content": request}]
    return await sim.answer("revision", messages, sim.config.revision_max_tokens)
