"""Map a `TrainConfig` onto the keyword arguments of transformers' `TrainingArguments` (which
TRL's SFTConfig and DPOConfig extend), so all three methods share one set of knobs."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .modeling import use_bf16
from .progress import LOGGING_STEPS


def training_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    import dataclasses

    import torch
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing and folded
    # warmup_ratio into a float warmup_steps; use whichever this version has.
    ckpt = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    warmup = "warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"
    kwargs: dict[str, Any] = {}
    if cfg.group_by_length and cfg.method == "stable":
        # Batches of similar lengths: less padding, at the cost of less random batches. Only the
        # Stable Alignment trainer measures its rows (TRL's prepared datasets have no length column).
        if "train_sampling_strategy" in fields:
            kwargs["train_sampling_strategy"] = "group_by_length"
        else:
            kwargs["group_by_length"] = True
    return kwargs | {
        "output_dir": cfg.out,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "learning_rate": cfg.lr,
        "lr_scheduler_type": cfg.schedule,
        **_warmup(cfg, warmup),
        "weight_decay": cfg.weight_decay,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "bf16": use_bf16(cfg),
        ckpt: cfg.gradient_checkpointing,
        f"{ckpt}_kwargs": {"use_reentrant": False} if cfg.gradient_checkpointing else None,
        "seed": cfg.seed,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "logging_steps": cfg.logging_steps or LOGGING_STEPS,
        "logging_first_step": True,
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",
        # Without CUDA, say so, so that accelerate does not look for other backends (mps etc.).
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
    }


def _warmup(cfg: TrainConfig, field: str) -> dict[str, Any]:
    """Warm-up as steps (an int) when the config names them, else as a ratio of the steps."""
    if cfg.warmup_steps is not None:
        return {"warmup_steps": cfg.warmup_steps} | ({"warmup_ratio": 0.0} if field == "warmup_ratio" else {})
    return {field: cfg.warmup_ratio}
