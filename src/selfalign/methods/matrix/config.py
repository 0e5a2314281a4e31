"""Options of a MATRIX run."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MatrixConfig(BaseModel):
    num_roles: int = Field(5, ge=1, le=20, description="K: social roles kept in the scene (paper: 5)")
    num_steps: int = Field(5, ge=1, le=20, description="S: actions in the ego's plan (paper: 5)")
    max_events: int | None = Field(
        None, ge=1, description="hard bound on events (actions + reactions); None: enough for the whole plan"
    )
    memory_bound: int = Field(8, ge=2, description="memory entries kept verbatim before older ones are summarised")
    reaction_depth: int = Field(
        1, ge=1, le=3, description="1: roles react to the ego's actions only; 2: also to reactions, once more; ..."
    )
    ego_retries: int = Field(1, ge=0, le=3, description="tries again at a rejected plan step before moving on")
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = Field(512, ge=1, description="per free-text call (the initial and revised answers)")
    json_max_tokens: int = Field(2048, ge=1, description="per structured call (scene, verdicts, reactions)")
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts
    sequential: bool = Field(
        False, description="await every call one at a time, as the reference code does (benchmarks only)"
    )

    @property
    def event_limit(self) -> int:
        """max_events, or a bound that never cuts a plan: every try of every step plus reactions."""
        if self.max_events is not None:
            return self.max_events
        per_level = self.num_roles
        reactions = sum(per_level**d for d in range(1, self.reaction_depth + 1))
        return self.num_steps * (1 + self.ego_retries + reactions)
