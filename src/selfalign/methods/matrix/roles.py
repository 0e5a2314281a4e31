"""The parts the model plays: the ego acts on its plan, every other role only reacts.

A person reacts in words or deeds; a social object "reacts" with its new state. A notice (the
modulator's reason for rejecting this actor's last action) is shown in the actor's next prompt
and then cleared.
"""

from __future__ import annotations

from selfalign.errors import ItemFailed

from .calls import Sim
from .modulator import Notice, World
from .record import Event
from .schemas import EgoAction, Reaction


async def ego_act(sim: Sim, world: World, index: int, step: int, notice: Notice | None) -> str:
    """The ego's action for plan step `step` (0-based), in the light of what has happened."""
    scene = world.scene
    messages = sim.render(
        "ego",
        scene=scene,
        step=step + 1,
        num_steps=len(scene.plan),
        planned=scene.plan[step],
        memory=world.memory_text(),
        notice=notice,
    )
    result = await sim.ask(f"e{index}/act", messages, EgoAction)
    return _action(result.action, f"the ego's action for step {step + 1}")


async def react(sim: Sim, world: World, index: int, name: str, perceived: Event, memory: str) -> str:
    """One perceiver's single reaction to `perceived`."""
    messages = sim.render(
        "react",
        scene=world.scene,
        role=world.role(name),
        perceived=perceived,
        memory=memory,
        notice=world.notices.pop(name, None),
    )
    result = await sim.ask(f"e{index}/react", messages, Reaction)
    return _action(result.action, f"{name}'s reaction to event {perceived.index}")


def _action(text: str, what: str) -> str:
    action = " ".join(text.split())
    if not action:
        raise ItemFailed(f"{what} is blank")
    return action
