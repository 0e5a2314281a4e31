"""Attacks by name. The shipped ones are imported only when named (gcg imports torch); a user adds
one with `register_attack(name, factory)`, or from an installed package with an entry point in the
`selfalign.attacks` group, without touching the runner."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from selfalign.errors import UserError

from .base import Attack, AttackFactory
from .options import AttackOptions

#: The no-attack baseline: every behaviour asked plainly. Always run.
BASELINE = "none"
BUILTIN = {
    BASELINE: "plain",
    "template": "template",
    "encoding": "encoding",
    "pair": "pair",
    "tap": "tap",
    "gcg": "gcg",
    "prefill": "turns",
    "multi-turn": "turns",
    "privacy": "privacy",
    "injection": "injection",
    "memorization": "memorization",
    "trigger": "trigger",
}
_registered: dict[str, AttackFactory] = {}


def register_attack(name: str, factory: AttackFactory) -> None:
    """Make `--attacks NAME` build an attack with `factory(options)`."""
    _registered[name] = factory


def known_attacks() -> list[str]:
    return [*BUILTIN, *_registered, *(e.name for e in entry_points(group="selfalign.attacks"))]


def _factory(name: str) -> AttackFactory:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        module = importlib.import_module(f"{__package__}.{BUILTIN[name]}")
        return module.FACTORIES[name]
    for entry in entry_points(group="selfalign.attacks", name=name):
        return entry.load()
    raise UserError(f"--attacks: unknown attack {name!r}; known: {', '.join(known_attacks())}")


def build_attacks(names: list[str], options: AttackOptions) -> dict[str, Attack]:
    """The baseline plus every named attack, their data files read and checked (before any call)."""
    return {name: _factory(name)(options) for name in dict.fromkeys([BASELINE, *names])}
