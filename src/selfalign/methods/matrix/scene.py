"""Scene building, in three structured calls, as the reference asks for:

1. the setting: the situation, the asker's role (the ego) and target, how following the
   initial answer affects people and society step by step, and the outcome;
2. exactly K roles, diverse (people affected, authorities, bystanders, social objects), each
   with traits and duties (a person) or a state (an object);
3. the ego's plan: exactly S concrete actions towards its target.
"""

from __future__ import annotations

from .calls import Sim
from .record import Role, Scene
from .schemas import SceneSetting, plan_schema, roles_schema


async def build_scene(sim: Sim, question: str, initial: str) -> Scene:
    cfg = sim.config
    setting = await sim.ask("scene", sim.render("scene", question=question, answer=initial), SceneSetting)
    # strings arrive on one line and never blank (schemas.Output)
    draft = Scene(
        situation=setting.situation, ego=setting.ego, target=setting.target,
        impact=setting.impact, outcome=setting.outcome, roles=[], plan=[],
    )
    listed = await sim.ask("roles", sim.render("roles", question=question, scene=draft, num_roles=cfg.num_roles),
                           roles_schema(cfg.num_roles))
    names = unique_names([r.name for r in listed.roles], taken={setting.ego.casefold()})
    draft.roles = [Role(name=n, kind=r.kind, description=r.description) for n, r in zip(names, listed.roles)]
    planned = await sim.ask("plan", sim.render("plan", question=question, scene=draft, num_steps=cfg.num_steps),
                            plan_schema(cfg.num_steps))
    draft.plan = planned.plan
    return draft


def unique_names(names: list[str], taken: set[str]) -> list[str]:
    """Roles are addressed by name (the modulator picks perceivers by name), so names must be
    distinct, and distinct from the ego: a repeated name gets a numbered suffix."""
    seen = set(taken)
    out = []
    for name in names:
        candidate, n = name, 2
        while candidate.casefold() in seen:
            candidate, n = f"{name} ({n})", n + 1
        seen.add(candidate.casefold())
        out.append(candidate)
    return out

