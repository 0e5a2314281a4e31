"""DPO with TRL's DPOTrainer on conversational preference pairs.

TRL tokenises prompt and completions with the chat template and computes log-probabilities on
the completion tokens only. With LoRA the reference model is the base model with the adapter
switched off (no second copy of the weights); otherwise TRL keeps a frozen copy.
"""

from __future__ import annotations

from typing import Any

from selfalign.llm.extras import require

from .arguments import training_kwargs
from .config import TrainConfig
from .data import Located, to_pairs


def make_dpo_args(cfg: TrainConfig) -> Any:
    trl = require("trl", "train")
    return trl.DPOConfig(**training_kwargs(cfg), max_length=cfg.max_length, beta=cfg.beta)


def build_dpo_trainer(cfg: TrainConfig, args: Any, model: Any, tokenizer: Any, records: list[Located]) -> Any:
    trl = require("trl", "train")
    from datasets import Dataset

    pairs = to_pairs(records)
    return trl.DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
    )
