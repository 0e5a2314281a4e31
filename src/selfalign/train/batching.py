"""The effective batch and warm-up of a recipe that names them, fitted to the data at hand.

SELF-ALIGN's engraving trains on 768 rows a step, with 100 warm-up steps then linear decay
(IBM/Dromedary, training/step3_principle_engraving/scripts/finetune_dromedary_65b_non_verbose.sh:
TOTAL_BATCH_SIZE=768, --num_warmup_steps 100, DeepSpeed's WarmupDecayLR). A machine holds
`batch_size` rows a device at once, so the rest comes from gradient accumulation:

    grad_accum = round(effective_batch / (batch_size * devices))

A small run cannot fill 768 rows a step for long: with fewer than MIN_STEPS steps of the
effective batch in its data, the effective batch shrinks to rows / MIN_STEPS (at least one
batch on every device), and warm-up never takes more than a third of the steps. The plan says
what it used instead, and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TrainConfig

MIN_STEPS = 10  # optimizer steps a small run still gets
MAX_WARMUP_SHARE = 3  # warm-up takes at most 1/3 of the steps (the reference: 100 of about 337)


@dataclass(frozen=True)
class BatchPlan:
    effective_batch: int  # rows per optimizer step, over all devices
    grad_accum: int
    steps: int
    warmup_steps: int | None
    note: str | None  # what was changed from the recipe, and why


def plan_batch(cfg: TrainConfig, rows: int, devices: int = 1) -> BatchPlan:
    per_step = cfg.batch_size * devices
    notes = []
    if cfg.effective_batch is None:
        accum = cfg.grad_accum
    else:
        target = cfg.effective_batch
        if rows < target * MIN_STEPS:
            target = max(per_step, rows // MIN_STEPS)
            notes.append(f"{rows} rows cannot fill {MIN_STEPS} steps of the effective batch of {cfg.effective_batch}; "
                         f"using {max(1, round(target / per_step)) * per_step}")
        accum = max(1, round(target / per_step))
    effective = accum * per_step
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(math.ceil(rows / per_step) / accum) * math.ceil(cfg.epochs)
    warmup = cfg.warmup_steps
    if warmup is not None and warmup * MAX_WARMUP_SHARE > steps:
        warmup = steps // MAX_WARMUP_SHARE
        notes.append(f"{steps} steps: warm-up cut from {cfg.warmup_steps} to {warmup} steps")
    note = "; ".join(notes) if notes else None
    return BatchPlan(effective, accum, steps, warmup, note)


def describe(plan: BatchPlan, cfg: TrainConfig, devices: int = 1) -> str:
    warmup = f", {plan.warmup_steps} warm-up steps" if plan.warmup_steps is not None else ""
    line = (f"effective batch {plan.effective_batch} ({cfg.batch_size} a device x {devices} devices x "
            f"{plan.grad_accum} accumulation), about {plan.steps} steps{warmup}, {cfg.schedule} schedule")
    return line + (f" ({plan.note})" if plan.note else "")
