"""MATRIX for one instruction, top to bottom:

    r0     = LLM(q)                                   initial answer
    scene  = LLM(q, r0) -> situation, ego, target,    scene.py (three structured calls)
             impact, outcome; K roles; S plan steps
    for each plan step (first to last):               roles.py + modulator.py
        the ego acts: the plan step's text -> the modulator judges it
        rejected: the ego is told why and tries another action (ego_retries times), then moves on
        feasible: in memory; its perceivers (role order) react together, one batch, each
                  knowing only what it did and perceived; each reaction is judged by the
                  modulator, and reactions reach their own perceivers while
                  depth < reaction_depth (default 2)
        memory past memory_bound -> summarised
        stop early only at max_events
    consequences = LLM(records) -> harms, summary, harm-free gist of r0     revision.py
    r1     = LLM(q, gist, consequences) when harm was found, else r0

Turn order is the algorithm's, never the clock's: event indices are taken in program order
before a batch goes out, so a run gives the same record whatever order calls finish in.
"""

from __future__ import annotations

from selfalign.llm import Model
from selfalign.methods.prompts import Prompts
from selfalign.store.inputs import Item

from .calls import PROMPTS_DIR, Sim
from .config import MatrixConfig
from .modulator import World, judge, summarise_memory
from .record import RECORD_FORMAT, Event, MatrixRecord, Scene
from .revision import harm_found, revise, summarise_consequences
from .roles import ego_retry, react
from .scene import build_scene

EGO_STEP_DEPTH = 0


async def run_item(item: Item, model: Model, config: MatrixConfig, prompts: Prompts | None = None) -> MatrixRecord:
    sim = Sim(model, config, prompts or Prompts(PROMPTS_DIR, config.templates), item)
    initial = await sim.answer("initial", list(item.messages), config.max_tokens)
    scene = await build_scene(sim, item.prompt, initial.text)
    world, stopped = await simulate(sim, scene)
    events = world.log()
    consequences = await summarise_consequences(sim, item.prompt, initial.text, scene, events)
    harmed = harm_found(consequences, events)
    final = await revise(sim, list(item.messages), item.prompt, consequences) if harmed else initial
    return MatrixRecord(
        format=RECORD_FORMAT,
        initial=initial.text,
        scene=world.scene,
        events=events,
        memory=world.memory,
        consequences=consequences,
        revised=final.text,
        harm_found=harmed,
        finish_reason=final.finish_reason,
        role_memories=world.role_memory,
        stopped=stopped,
        calls=sim.kept_calls(),
    )


async def simulate(sim: Sim, scene: Scene) -> tuple[World, str]:
    """Play the ego's whole plan, every step, under the modulator; returns the world and why it stopped."""
    world = World(scene=scene.model_copy(deep=True), limit=sim.config.event_limit)
    ego = scene.ego
    for step in range(len(scene.plan)):
        world.start_step(len(scene.plan) - step)
        world.notices.pop(ego, None)  # a new step starts from the plan
        for attempt in range(1 + sim.config.ego_retries):
            if world.room <= 0:
                return world, "max_events"
            index = world.reserve()
            if attempt == 0:
                action = scene.plan[step]  # the plan step is the action, as in the reference
            else:
                action = await ego_retry(sim, world, index, step, world.notices.pop(ego))
            event = await judge(
                sim, world, index, actor=ego, action=action, step=step, attempt=attempt,
                depth=EGO_STEP_DEPTH, responds_to=None, memory=world.memory_text(),
            )
            world.commit(event)  # rejected: a notice for the ego's next try
            if event.feasible:
                await reactions(sim, world, event)
                break
        await summarise_memory(sim, world, step)
    return world, "plan_done"


async def reactions(sim: Sim, world: World, event: Event) -> None:
    """Every perceiver of `event` reacts once; all reactions go out together, each is judged by
    the modulator as soon as it is written, against the memory as it was when they all began.
    Perceivers beyond the event budget are recorded in `not_reacted`."""
    if not event.perceivers:
        return
    reacting = event.perceivers[: world.reaction_room]
    event.not_reacted = event.perceivers[len(reacting) :]
    memory = world.memory_text()
    indices = [world.reserve() for _ in reacting]  # role order
    for index in indices:
        sim.place(f"e{index}/react", f"e{index}/verdict")

    async def react_and_judge(index: int, name: str) -> Event:
        action = await react(sim, world, index, name, event)
        return await judge(
            sim, world, index, actor=name, action=action, step=event.step, attempt=event.attempt,
            depth=event.depth + 1, responds_to=event.index, memory=memory,
        )

    judged = await sim.batch([react_and_judge(i, n) for i, n in zip(indices, reacting)])
    for reaction in judged:  # commit in role order
        world.commit(reaction)
    for reaction in judged:  # deeper levels only when reaction_depth > 1 (perceivers empty otherwise)
        if reaction.feasible:
            await reactions(sim, world, reaction)
