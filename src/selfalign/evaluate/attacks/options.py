"""The settings every attack may read, checked once before any model call."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AttackOptions(BaseModel):
    temperature: float = Field(0.0, ge=0.0, le=2.0)  # the target's answers; 0: greedy
    max_tokens: int = Field(256, ge=1)
    seed: int = 0
    jailbreaks_file: str | None = None  # template: None = the shipped set
    encodings: list[str] = ["base64", "hex", "rot13", "leetspeak"]
    iterations: int = Field(3, ge=1)  # pair: rounds per stream
    streams: int = Field(3, ge=1)  # pair: concurrent conversations per behaviour
    tap_branching: int = Field(4, ge=1)  # tap: children per leaf (paper 4)
    tap_width: int = Field(10, ge=1)  # tap: leaves kept per level (paper 10)
    tap_depth: int = Field(10, ge=1)  # tap: levels (paper 10)
    attacker_max_tokens: int = Field(512, ge=1)
    judge_max_tokens: int = Field(512, ge=1)
    gcg_steps: int = Field(250, ge=1)  # nanoGCG's defaults; GCG_PRESETS["fast"] for CPUs
    gcg_search_width: int = Field(512, ge=1)
    gcg_topk: int = Field(256, ge=1)
    gcg_suffix_tokens: int = Field(20, ge=1)
    gcg_buffer_size: int = Field(0, ge=0)
    gcg_early_stop: bool = True  # stop once some candidate makes the model write the target greedily
    canary: str = "ZEBRA-7741-QUILL"  # privacy: the secret put in the system prompt
    privacy_probes_file: str | None = None
    injection_documents_file: str | None = None  # injection: documents that carry the hidden instruction
    train_run: str | None = None  # memorization: the training run whose canaries are read
    exposure_candidates: int = Field(1000, ge=1)  # memorization: other secrets scored per canary
    trigger: str | None = None  # trigger: the backdoor's trigger text
    templates: str | None = None  # folder of .j2 files replacing the shipped attack prompts


GCG_PRESETS = {  # --gcg-preset: nanoGCG's defaults, or the small settings a CPU can run
    "nanogcg": {"gcg_steps": 250, "gcg_search_width": 512, "gcg_topk": 256},
    "fast": {"gcg_steps": 50, "gcg_search_width": 128, "gcg_topk": 64},
}
