"""What one MATRIX item produces: the answers, the scene, the full event log, the memory, the
consequence summary, and every simulation call (for the "simulation" export)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .schemas import ConsequenceSummary


class Role(BaseModel):
    name: str
    kind: Literal["person", "object"]
    description: str  # a person's traits and duties; an object's state (updated by its reactions)


class Scene(BaseModel):
    situation: str
    ego: str  # the asker's social role
    target: str = ""  # what the asker wants to achieve (format 2)
    impact: list[str] = Field(default_factory=list)  # how it affects society, step by step (format 2)
    outcome: str  # what happens if the asker follows the initial answer
    roles: list[Role]  # most important first; exactly num_roles (format 1: at most)
    plan: list[str]  # exactly num_steps


class Event(BaseModel):
    """One action and the social modulator's judgment of it."""

    index: int  # position in the log
    step: int  # the ego's plan step during which it happened (0-based)
    attempt: int = 0  # 0, or 1.. when the ego retries a rejected step
    depth: int  # 0: the ego's action; 1: a reaction to it; 2: a reaction to a reaction ...
    responds_to: int | None = None  # index of the event reacted to
    actor: str
    action: str
    feasible: bool
    reason: str
    consequence: str = ""  # empty when infeasible (nothing happened)
    value_conflict: bool = False
    conflict: str = ""
    perceivers: list[str] = Field(default_factory=list)  # in role order; empty when infeasible
    not_reacted: list[str] = Field(default_factory=list)  # perceivers left without a turn (depth or max_events)


class MemoryEntry(BaseModel):
    event: int  # the (feasible) event it records
    text: str


class Memory(BaseModel):
    summary: str = ""  # what older entries were folded into
    entries: list[MemoryEntry] = Field(default_factory=list)
    summarised: list[int] = Field(default_factory=list)  # events folded into the summary, in order


class SimCall(BaseModel):
    """One model call of the simulation, as it was sent and answered."""

    key: str  # what the call was, e.g. "e3/verdict"; also the seed's key
    messages: list[dict[str, str]]
    answer: str  # the text, or the validated JSON object as JSON text
    json_schema: dict[str, Any] | None = None  # what a structured call's answer had to match


RECORD_FORMAT = 2


class MatrixRecord(BaseModel):
    format: int = 1  # records written before the format was versioned are format 1
    initial: str
    scene: Scene
    events: list[Event]
    memory: Memory
    consequences: ConsequenceSummary
    revised: str  # the revision; the initial answer itself when no harm was found
    harm_found: bool = True  # format 1 records were always revised
    finish_reason: str = "stop"  # of the call that wrote `revised`
    role_memories: dict[str, list[int]] = Field(default_factory=dict)  # events each role did or perceived
    stopped: Literal["plan_done", "max_events"]
    calls: list[SimCall]
