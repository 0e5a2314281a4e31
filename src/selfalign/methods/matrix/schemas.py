"""The structured outputs of a MATRIX simulation: what the model must return at each step.

Every string has a max_length and every list a max_length, so a model under constrained
decoding (even a random one) always terminates with a valid object. Schemas that depend on
the scene (the number of roles, the plan length, the names a perceiver can be) are built by
the functions at the bottom, once per shape (building a model class costs more than the rest of
a call); a name list becomes a JSON-schema enum, so a verdict can only name roles that exist.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, create_model, model_validator

NAME = 40  # a role's name
SHORT = 160  # a plan step, a value conflict, a harm
TEXT = 240  # an action, a reaction, a consequence, a reason, the situation
LONG = 600  # a summary


def _bounded_str(n: int) -> Any:
    return Annotated[str, Field(min_length=1, max_length=n)]


def one_line(value: Any) -> Any:
    """Every string in `value` on one line: whitespace runs (newlines, tabs, and the separators
    str.split counts, such as \\x1c) become one space, and the ends are stripped."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [one_line(v) for v in value]
    if isinstance(value, dict):
        return {k: one_line(v) for k, v in value.items()}
    return value


def printable(value: Any) -> Any:
    """A name with its unprintable characters (controls, format marks such as bidi overrides)
    taken out. A role's name becomes part of later schemas (the perceivers' enum), which the
    model's server compiles into a grammar: control characters there fail the item on some
    servers (llama.cpp's), and they mean nothing as a name."""
    return "".join(ch for ch in value if ch.isprintable()) if isinstance(value, str) else value


#: A role's name: short printable text (an empty one, once cleaned, is a schema violation).
Name = Annotated[str, BeforeValidator(printable)]


class Output(BaseModel):
    """Strings are made one line before their checks, so a blank name, plan step or action
    breaks its min_length: a schema violation, retried like any other, never an empty value."""

    @model_validator(mode="before")
    @classmethod
    def _one_line(cls, data: Any) -> Any:
        return one_line(data)


class RoleSpec(Output):
    """A social role: a person (with traits and duties) or a social object (with a state)."""

    name: Name = Field(min_length=1, max_length=NAME, description="short name, e.g. 'bank teller' or 'cash drawer'")
    kind: Literal["person", "object"]
    description: str = Field(
        max_length=TEXT, description="a person's traits and duties, or an object's current state"
    )


class EgoAction(Output):
    action: str = Field(min_length=1, max_length=TEXT, description="what the asker concretely does now")


class Reaction(Output):
    action: str = Field(
        min_length=1, max_length=TEXT, description="a person's reaction, or an object's new state"
    )


class MemorySummary(Output):
    summary: str = Field(min_length=1, max_length=LONG)


class Harm(Output):
    who: str = Field(min_length=1, max_length=NAME)
    what: str = Field(min_length=1, max_length=SHORT)


class ConsequenceSummary(Output):
    harms: list[Harm] = Field(max_length=8, description="what went wrong for whom; empty if nothing did")
    summary: str = Field(min_length=1, max_length=LONG)
    answer_gist: str = ""  # records before format 2 have none


class ConsequenceReport(ConsequenceSummary):
    """What the consequence call must return: the summary, and a harm-free gist of the answer."""

    answer_gist: str = Field(max_length=TEXT, description="the legitimate help the answer offers, without any harmful detail")


class SceneSetting(Output):
    """Scene building, first call: the situation and how it unfolds, step by step."""

    situation: str = Field(min_length=1, max_length=TEXT, description="where and when the question is asked")
    ego: Name = Field(min_length=1, max_length=NAME, description="the asker's social role")
    target: str = Field(min_length=1, max_length=SHORT, description="what the asker wants to achieve")
    impact: list[_bounded_str(SHORT)] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=5, description="how following the answer affects people and society, step by step"
    )
    outcome: str = Field(min_length=1, max_length=TEXT, description="what happens in the end if the asker follows the answer")


@functools.cache
def roles_schema(num_roles: int) -> type[BaseModel]:
    """Scene building, second call: exactly `num_roles` roles, most important first."""
    return create_model(
        "Roles",
        __base__=Output,
        roles=(list[RoleSpec], Field(min_length=num_roles, max_length=num_roles, description="most important first")),
    )


@functools.cache
def plan_schema(num_steps: int) -> type[BaseModel]:
    """Scene building, third call: the asker's plan of exactly `num_steps` actions."""
    return create_model(
        "Plan",
        __base__=Output,
        plan=(
            list[_bounded_str(SHORT)],
            Field(min_length=num_steps, max_length=num_steps, description="the asker's concrete actions, in order"),
        ),
    )


@functools.cache
def verdict_schema(candidates: tuple[str, ...]) -> type[BaseModel]:
    """The social modulator's judgment of one action: (a) feasibility and why, (c) its
    consequence and whether it conflicts with human values, (d) who perceives it, named from
    `candidates` only."""
    if candidates:
        perceiver: Any = Literal[tuple(candidates)]  # type: ignore[valid-type]
    else:
        perceiver = str
    return create_model(
        "Verdict",
        __base__=Output,
        feasible=(bool, ...),
        reason=(str, Field(min_length=1, max_length=TEXT, description="why the action is or is not possible now")),
        consequence=(str, Field(max_length=TEXT, description="its consequence for people and society")),
        value_conflict=(bool, Field(description="does it conflict with human values")),
        conflict=(str, Field(max_length=SHORT, description="which values, if any")),
        perceivers=(list[perceiver], Field(max_length=len(candidates), description="roles who notice it")),
    )
