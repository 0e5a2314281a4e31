"""The social modulator: the hub every action passes through (not a role).

For each action it (a) judges feasibility given the scene's memory, (b) records a feasible one
in memory, (c) writes its consequence for people and society and flags value conflicts, and
(d) names the roles that perceive it. (a), (c) and (d) are one structured call (`judge`); (b)
and the bookkeeping are `World.commit`, which enforces the rules:

- an infeasible action is never written to memory and never perceived (it did not happen); its
  actor gets a notice with the modulator's reason, shown in its next turn's prompt;
- perceivers are kept in role order (never completion order), the actor excluded;
- the modulator's memory holds every fact; a role knows only what it did and what it perceived
  (`role_memory`), so an action nobody perceives reaches nobody but its actor;
- the modulator's memory past `memory_bound` entries is folded into a summary (`summarise_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .calls import Sim
from .record import Event, Memory, MemoryEntry, Role, Scene
from .schemas import MemorySummary, verdict_schema


@dataclass
class Notice:
    """What an actor is told after a rejected action."""

    action: str
    reason: str


@dataclass
class World:
    scene: Scene
    limit: int  # max events
    events: list[Event | None] = field(default_factory=list)  # None: reserved, being judged
    memory: Memory = field(default_factory=Memory)
    notices: dict[str, Notice] = field(default_factory=dict)  # actor -> last rejection, until told
    role_memory: dict[str, list[int]] = field(default_factory=dict)  # role -> events it did or perceived
    step_end: int = 0  # reactions during the current plan step stop at this event index

    @property
    def room(self) -> int:
        return self.limit - len(self.events)

    def start_step(self, steps_left: int) -> None:
        """Each plan step, this one included, gets an equal share of the room left (rounded up;
        what a step leaves unused goes to the later ones), so reactions to early steps never
        crowd out the rest of the plan."""
        self.step_end = len(self.events) + -(-self.room // steps_left)

    @property
    def reaction_room(self) -> int:
        return max(0, min(self.room, self.step_end - len(self.events)))

    def reserve(self) -> int:
        """Take the next event index now, in program order, so the log's order never depends on
        which concurrent call finishes first."""
        self.events.append(None)
        return len(self.events) - 1

    def role(self, name: str) -> Role:
        return next(r for r in self.scene.roles if r.name == name)

    def others(self, actor: str) -> list[str]:
        return [r.name for r in self.scene.roles if r.name != actor]

    def commit(self, event: Event) -> None:
        """(b): a feasible action becomes a fact in memory (an object's reaction is its new
        state); an infeasible one only leaves its actor a notice."""
        self.events[event.index] = event
        if not event.feasible:
            self.notices[event.actor] = Notice(event.action, event.reason)
            return
        for who in (event.actor, *event.perceivers):
            self.role_memory.setdefault(who, []).append(event.index)
        text = f"{event.actor}: {event.action}"
        if event.consequence:
            text += f" (consequence: {event.consequence})"
        self.memory.entries.append(MemoryEntry(event=event.index, text=text))
        if event.depth > 0 and self.role(event.actor).kind == "object":
            self.role(event.actor).description = event.action

    def memory_text(self) -> str:
        lines = [f"Earlier: {self.memory.summary}"] if self.memory.summary else []
        lines += [f"- {e.text}" for e in self.memory.entries]
        return "\n".join(lines) or "(nothing has happened yet)"

    def known_to(self, name: str, bound: int, now: int | None = None) -> str:
        """What a role did and perceived so far (the newest `bound` events), `now` (the event it
        is reacting to) left out."""
        recent = self.role_memory.get(name, [])[-(bound + 1) :]  # `now` is in a role's memory once at most
        known = [i for i in recent if i != now][-bound:]
        lines = [f"- {self.events[i].actor}: {self.events[i].action}" for i in known]  # type: ignore[union-attr]
        return "\n".join(lines) or "(nothing yet)"

    def log(self) -> list[Event]:
        return [e for e in self.events if e is not None]


async def judge(
    sim: Sim,
    world: World,
    index: int,
    *,
    actor: str,
    action: str,
    step: int,
    attempt: int,
    depth: int,
    responds_to: int | None,
    memory: str,
) -> Event:
    """(a), (c), (d) in one structured call. Perceivers are asked for only where they would
    get a turn (depth below reaction_depth); they come back in role order, deduplicated."""
    candidates = tuple(world.others(actor)) if depth < sim.config.reaction_depth else ()
    messages = sim.render(
        "verdict",
        scene=world.scene,
        memory=memory,
        actor=actor,
        action=action,
        is_ego=depth == 0,
        candidates=list(candidates),
    )
    verdict = await sim.ask(f"e{index}/verdict", messages, verdict_schema(candidates))
    chosen = set(verdict.perceivers)
    feasible = bool(verdict.feasible)
    return Event(
        index=index,
        step=step,
        attempt=attempt,
        depth=depth,
        responds_to=responds_to,
        actor=actor,
        action=action,
        feasible=feasible,
        reason=verdict.reason,
        consequence=verdict.consequence if feasible else "",
        value_conflict=bool(verdict.value_conflict) if feasible else False,
        conflict=verdict.conflict if feasible and verdict.value_conflict else "",
        perceivers=[name for name in candidates if name in chosen] if feasible else [],
    )


async def summarise_memory(sim: Sim, world: World, step: int) -> None:
    """Past `memory_bound` entries, fold the oldest into the summary and keep the newest half."""
    bound = sim.config.memory_bound
    entries = world.memory.entries
    if len(entries) <= bound:
        return
    keep = bound // 2
    old, new = entries[: len(entries) - keep], entries[len(entries) - keep :]
    messages = sim.render("memory", summary=world.memory.summary, entries=[e.text for e in old])
    result = await sim.ask(f"s{step}/memory", messages, MemorySummary)
    world.memory.summary = result.summary
    world.memory.summarised.extend(e.event for e in old)
    world.memory.entries = new
