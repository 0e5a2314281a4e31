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
    ego = _clean(setting.ego)  # never blank: the schemas strip strings before their min_length
    draft = Scene(
        situation=_clean(setting.situation), ego=ego, target=_clean(setting.target),
        impact=[_clean(s) for s in setting.impact], outcome=_clean(setting.outcome), roles=[], plan=[],
    )
    listed = await sim.ask("roles", sim.render("roles", question=question, scene=draft, num_roles=cfg.num_roles),
                           roles_schema(cfg.num_roles))
    names = unique_names([_clean(r.name) for r in listed.roles], taken={ego.casefold()})
    draft.roles = [Role(name=n, kind=r.kind, description=_clean(r.description)) for n, r in zip(names, listed.roles)]
    planned = await sim.ask("plan", sim.render("plan", question=question, scene=draft, num_steps=cfg.num_steps),
                            plan_schema(cfg.num_steps))
    draft.plan = [_clean(step) for step in planned.plan]
    return draft


def unique_names(names: list[str], taken: set[str]) -> list[str]:
    """Roles are addressed by name (the modulator picks perceivers by name), so names must be
    distinct, and distinct from the ego: a repeated or blank name gets a numbered suffix."""
    seen = set(taken)
    out = []
    for i, name in enumerate(names):
        base = name or f"role {i + 1}"
        candidate, n = base, 2
        while candidate.casefold() in seen:
            candidate, n = f"{base} ({n})", n + 1
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def _clean(text: str) -> str:
    return " ".join(text.split())
