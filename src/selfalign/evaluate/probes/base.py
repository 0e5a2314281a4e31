"""What a probe is: a small object that reads (and may steer) a model's activations, in steps
that are the items of one resumable run (`selfalign probe`). Probes know transformers models
and their own data files, nothing of the store or the runner.

    class MyProbe:
        name = "my-probe"
        def steps(self) -> list[str]:                        # run in this order, for each model
            return ["activations"]
        def run(self, ctx: ProbeContext, step: str) -> dict: # one step's record (JSON-able)
            ...
        def results(self, records: dict[str, dict[str, dict]], models: list[str]) -> dict:
            ...                                              # {model: {step: record}} -> figures
        def render(self, results: dict) -> str: ...          # the figures as Markdown (results.md)

    register_probe("my-probe", lambda options: MyProbe(options))

or, from an installed package, an entry point in the `selfalign.probes` group naming such a
factory; `--probe my-probe` then finds it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol

from pydantic import BaseModel, Field

from selfalign.errors import UserError


class ProbeOptions(BaseModel):
    """The settings every probe may read, checked before any model is loaded."""

    harmful: str | None = None  # refusal-direction: prompts (a file); None = the shipped set
    harmless: str | None = None
    held_out: float = Field(0.5, gt=0, lt=1)  # share of each set kept out of the direction, to measure it on
    layer: int | None = None  # None: the layer that separates held-out prompts best
    max_new_tokens: int = Field(48, ge=1)
    batch_size: int = Field(32, ge=1)
    refusal_phrases_file: str | None = None
    seed: int = 0
    resamples: int = Field(10_000, ge=100)


@dataclass
class ProbeContext:
    """What a step may use: the model (transformers), its tokenizer and padding id, its spec, and
    the records of its earlier steps."""

    spec: str
    model: Any
    tokenizer: Any
    pad_id: int
    earlier: dict[str, dict[str, Any]]


class Probe(Protocol):
    name: str

    def steps(self) -> list[str]: ...

    def run(self, ctx: ProbeContext, step: str) -> dict[str, Any]: ...

    def results(self, records: dict[str, dict[str, dict[str, Any]]], models: list[str]) -> dict[str, Any]: ...

    def render(self, results: dict[str, Any]) -> str: ...


ProbeFactory = Callable[[ProbeOptions], Probe]
BUILTIN = {"refusal-direction": "refusal"}
_registered: dict[str, ProbeFactory] = {}


def register_probe(name: str, factory: ProbeFactory) -> None:
    """Make `--probe NAME` build a probe with `factory(options)`."""
    _registered[name] = factory


def known_probes() -> list[str]:
    return [*BUILTIN, *_registered, *(e.name for e in entry_points(group="selfalign.probes"))]


def build_probe(name: str, options: ProbeOptions) -> Probe:
    """The named probe, its data files read and checked."""
    if name in _registered:
        return _registered[name](options)
    if name in BUILTIN:
        return importlib.import_module(f"{__package__}.{BUILTIN[name]}").FACTORIES[name](options)
    for entry in entry_points(group="selfalign.probes", name=name):
        return entry.load()(options)
    raise UserError(f"--probe: unknown probe {name!r}; known: {', '.join(known_probes())}")
