"""Options of a MATRIX run."""

from __future__ import annotations

from pydantic import BaseModel, Field


CONFIG_FORMAT = 2  # 1: before per-role memories, plan steps as actions, scene in three calls, harm-free revision


class MatrixConfig(BaseModel):
    format: int = CONFIG_FORMAT
    num_roles: int = Field(5, ge=1, le=20, description="K: social roles kept in the scene (paper: 5)")
    num_steps: int = Field(5, ge=1, le=20, description="S: actions in the ego's plan (paper: 5)")
    max_events: int | None = Field(
        None, ge=1, description="hard bound on events (actions + reactions); None: see event_limit"
    )
    memory_bound: int = Field(8, ge=2, description="memory entries kept verbatim before older ones are summarised")
    reaction_depth: int = Field(
        2, ge=1, le=3, description="1: roles react to the ego's actions only; 2: also to those reactions; ..."
    )
    ego_retries: int = Field(1, ge=0, le=3, description="tries again at a rejected plan step before moving on")
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = Field(512, ge=1, description="per initial answer")
    revision_max_tokens: int = Field(2048, ge=1, description="per revised answer (the reference allows 2,048)")
    keep_truncated: bool = Field(
        False, description="serving: return an answer cut at max_tokens (finish_reason length) instead of retrying"
    )
    json_max_tokens: int = Field(2048, ge=1, description="per structured call (scene, verdicts, reactions)")
    templates: str | None = None  # a folder whose .j2 files replace the shipped prompts
    sequential: bool = Field(
        False, description="await every call one at a time, as the reference code does (benchmarks only)"
    )

    @property
    def event_limit(self) -> int:
        """max_events, or every try of every plan step plus, per step, each role reacting up to
        twice (to the ego's action and to one reaction), or once with reaction_depth 1. Each
        step's reactions get an equal share of the room (modulator.World.start_step)."""
        if self.max_events is not None:
            return self.max_events
        reactions = self.num_roles * min(self.reaction_depth, 2)
        return self.num_steps * (1 + self.ego_retries + reactions)
