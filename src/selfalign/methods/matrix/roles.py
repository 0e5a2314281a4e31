"""The parts the model plays: the ego acts on its plan (the plan step's text is its action, as
in the reference; it is asked for another only when the modulator rejects one), every other
role only reacts. Each knows only what it did and perceived, never the modulator's whole log.

A person reacts in words or deeds; a social object "reacts" with its new state. A notice (the
modulator's reason for rejecting this actor's last action) is shown in the actor's next prompt
and then cleared.
"""

from __future__ import annotations

from .calls import Sim
from .modulator import Notice, World
from .record import Event
from .schemas import EgoAction, Reaction


async def ego_retry(sim: Sim, world: World, index: int, step: int, notice: Notice) -> str:
    """The ego's other try at plan step `step` (0-based) after the modulator rejected the
    planned action, knowing what the ego did and perceived and why it was rejected."""
    scene = world.scene
    messages = sim.render(
        "ego",
        scene=scene,
        step=step + 1,
        num_steps=len(scene.plan),
        planned=scene.plan[step],
        memory=world.known_to(scene.ego, sim.config.memory_bound),
        notice=notice,
    )
    result = await sim.ask(f"e{index}/act", messages, EgoAction)
    return result.action


async def react(sim: Sim, world: World, index: int, name: str, perceived: Event) -> str:
    """One perceiver's single reaction to `perceived`, knowing only what it did and perceived."""
    messages = sim.render(
        "react",
        scene=world.scene,
        role=world.role(name),
        perceived=perceived,
        memory=world.known_to(name, sim.config.memory_bound, now=perceived.index),
        notice=world.notices.pop(name, None),
    )
    result = await sim.ask(f"e{index}/react", messages, Reaction)
    return result.action

