"""Training: `selfalign train --method sft|stable|dpo`.

- `losses`: pure loss functions (Stable Alignment), torch only.
- `records`, `data`: the accepted data formats, validation, tokenisation.
- `stable`: the Stable Alignment trainer (a transformers.Trainer); `sft`, `dpo`: TRL trainers.
- `run.train(TrainConfig)`: one training job end to end; `configs/`: accelerate launch configs.

Only `losses` is imported eagerly-safe without the `train` extra; TRL / PEFT / accelerate are
loaded when a trainer is built.
"""

from __future__ import annotations

from pathlib import Path

CONFIGS_DIR = Path(__file__).parent / "configs"


def accelerate_config(name: str) -> Path:
    """Path of a shipped accelerate config: 'zero2', 'zero3' or 'fsdp'."""
    path = CONFIGS_DIR / f"{name}.yaml"
    if not path.exists():
        choices = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no accelerate config {name!r}; shipped: {choices}")
    return path
