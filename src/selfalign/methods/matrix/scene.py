"""Scene building: one structured call gives the situation, the asker's role (the ego), what
happens if the asker follows the initial answer, the K most important roles (people with traits
and duties, social objects with a state) and the ego's plan of exactly S actions."""

from __future__ import annotations

from selfalign.errors import ItemFailed

from .calls import Sim
from .record import Role, Scene
from .schemas import scene_schema


async def build_scene(sim: Sim, question: str, initial: str) -> Scene:
    cfg = sim.config
    messages = sim.render("scene", question=question, answer=initial, num_roles=cfg.num_roles, num_steps=cfg.num_steps)
    raw = await sim.ask("scene", messages, scene_schema(cfg.num_roles, cfg.num_steps))
    ego = _clean(raw.ego)
    plan = [_clean(step) for step in raw.plan]
    if not ego:
        raise ItemFailed("scene: the asker's role (ego) is blank")
    if blank := [i + 1 for i, step in enumerate(plan) if not step]:
        raise ItemFailed(f"scene: plan step(s) {blank} are blank")
    names = unique_names([_clean(r.name) for r in raw.roles], taken={ego.casefold()})
    roles = [Role(name=n, kind=r.kind, description=_clean(r.description)) for n, r in zip(names, raw.roles)]
    return Scene(situation=_clean(raw.situation), ego=ego, outcome=_clean(raw.outcome), roles=roles, plan=plan)


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
