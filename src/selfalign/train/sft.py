"""SFT with TRL's SFTTrainer, loss on the assistant's tokens only.

The data is tokenised here with per-token `assistant_masks` (see `data.tokenize_conversation`),
which SFTTrainer turns into labels (-100 elsewhere). This works for any prefix-preserving chat
template, including ones without `{% generation %}` markers, which TRL's own
`assistant_only_loss` requires.
"""

from __future__ import annotations

from typing import Any

from selfalign.llm.extras import require

from .arguments import training_kwargs
from .config import TrainConfig
from .data import Located, to_sft, tokenize_sft


def make_sft_args(cfg: TrainConfig) -> Any:
    trl = require("trl", "train")
    return trl.SFTConfig(**training_kwargs(cfg), max_length=cfg.max_length, packing=False)


def build_sft_trainer(cfg: TrainConfig, args: Any, model: Any, tokenizer: Any, records: list[Located]) -> Any:
    trl = require("trl", "train")
    from datasets import Dataset

    rows = tokenize_sft(tokenizer, to_sft(records), max_length=cfg.max_length)
    return trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
