"""Options of a Sandbox simulation, checked before any model call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from selfalign.errors import UserError

from .grid import min_neighbour_count

Stance = Literal["all_good", "all_bad", "half_half", "mixed_half_half"]
STANCES: tuple[str, ...] = ("all_good", "all_bad", "half_half", "mixed_half_half")


CONFIG_FORMAT = 2  # 1: before neutral drafts, pooled imitation groups and sampled memory seeds


class SandboxConfig(BaseModel):
    """Everything that decides what a simulation produces (bound to the run folder)."""

    format: int = CONFIG_FORMAT
    grid: int = Field(10, ge=2, description="the grid is grid x grid agents (paper: 10)")
    rounds: int = Field(4, ge=1, le=999)
    stance: Stance = "mixed_half_half"
    stances_file: str | None = None  # None: the shipped stance-labelled pairs
    radius: float | None = Field(None, gt=0, description="social radius, Euclidean; None: grid / 2")
    raters: int = Field(4, ge=1, description="neighbours rating each draft (paper: 4)")
    memory_threshold: float = Field(
        0.3, ge=-1.0, le=1.0, description="min cosine similarity; 0.3 measured for the lexical embedder"
    )
    memory_k: int = Field(1, ge=0, description="past answers recalled per question (reference: 1)")
    memory_seeds: int = Field(50, ge=0, description="stance pairs sampled into each agent's memory (reference: about 50)")
    embedder: str = "lexical"
    seed: int = 0
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, description="per draft")
    revision_max_tokens: int = Field(2048, ge=1, description="per revision (the reference allows 2,048)")
    judge_temperature: float = Field(0.0, ge=0.0, le=2.0, description="neighbours' and observers' ratings")
    judge_max_tokens: int = Field(256, ge=1, description="per rating")
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts

    @property
    def agents(self) -> int:
        return self.grid * self.grid

    @property
    def social_radius(self) -> float:
        return self.radius if self.radius is not None else self.grid / 2

    @model_validator(mode="after")
    def _enough_neighbours(self) -> "SandboxConfig":
        fewest = min_neighbour_count(self.grid, self.social_radius)
        if fewest < self.raters:
            raise ValueError(
                f"with --grid {self.grid} and --radius {self.social_radius:g} some agents have only {fewest} "
                f"neighbours, fewer than --raters {self.raters}; lower --raters or raise --radius"
            )
        return self


def make_config(**options: object) -> SandboxConfig:
    """SandboxConfig, with a validation failure turned into a UserError naming the flag."""
    from pydantic import ValidationError

    try:
        return SandboxConfig(**options)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(map(str, first["loc"]))
        flag = "--" + {"stances_file": "stances"}.get(field, field).replace("_", "-")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"{flag} {first.get('input')}: {message}" if field else message) from exc
