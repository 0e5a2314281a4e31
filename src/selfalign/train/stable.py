"""The Stable Alignment trainer: a `transformers.Trainer` whose loss is
`selfalign.train.losses.stable_alignment_loss`.

A batch holds many groups. All responses of all groups go through the model in ONE forward pass:
the collator flattens (groups x responses) into rows, pads them on the right and masks prompt
tokens with -100; `compute_loss` takes each row's mean token NLL and scatters it back into a
(groups, K) tensor with a mask for groups that have fewer than K responses. Everything else
(optimiser, scheduler, checkpoints, resume, bf16, accelerate / DeepSpeed / FSDP) is the
Trainer's own; the device is whatever the Trainer / accelerate put the batch on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import Trainer

from .losses import IGNORE_INDEX, sequence_mean_nll, stable_alignment_loss


class GroupDataset(Dataset):
    """Pre-tokenised groups: {"input_ids": [[ids] * K], "labels": [[ids] * K], "ratings": [K]}."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


@dataclass
class GroupCollator:
    """Flatten a list of groups into one padded batch of responses.

    Returns input_ids / attention_mask / labels of shape (R, T), R = total responses in the batch
    (no dummy rows for short groups), plus ratings and response_mask of shape (G, K): row r of
    the flat batch is the r-th True entry of response_mask in row-major order.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seqs = [ids for f in features for ids in f["input_ids"]]
        labels = [lab for f in features for lab in f["labels"]]
        k = max(len(f["input_ids"]) for f in features)
        length = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(seqs), length), self.pad_token_id, dtype=torch.long)
        label_t = torch.full((len(seqs), length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(seqs), length), dtype=torch.long)
        for r, (s, lab) in enumerate(zip(seqs, labels, strict=True)):
            input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            label_t[r, : len(lab)] = torch.tensor(lab, dtype=torch.long)
            attention[r, : len(s)] = 1
        ratings = torch.ones((len(features), k), dtype=torch.float32)
        response_mask = torch.zeros((len(features), k), dtype=torch.bool)
        for g, f in enumerate(features):
            n = len(f["ratings"])
            ratings[g, :n] = torch.tensor(f["ratings"], dtype=torch.float32)
            response_mask[g, :n] = True
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": label_t,
            "ratings": ratings,
            "response_mask": response_mask,
        }


class StableAlignmentTrainer(Trainer):
    """`Trainer` with the Stable Alignment loss; see the module docstring.

    The loss is a mean over groups, not over tokens, so the Trainer must divide it by the
    gradient-accumulation steps itself: `loss_is_scaled_for_ga = False`.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        rating_scale: float = 7.0,
        ratio: float = 0.2,
        margin: float = 1.0,
        reduce: str = "mean",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.rating_scale = rating_scale
        self.ratio = ratio
        self.margin = margin
        self.reduce = reduce

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # group_by_length: the stock sampler would measure a group by its number of responses;
        # measure it by its longest response, so batches of similar lengths waste less padding.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if getattr(self.args, "train_sampling_strategy", None) == "group_by_length" and isinstance(dataset, GroupDataset):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            lengths = [max(len(ids) for ids in row["input_ids"]) * len(row["input_ids"]) for row in dataset.rows]
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps, dataset=dataset, lengths=lengths
            )
        return super()._get_train_sampler(train_dataset)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs["labels"]
        mask = inputs["response_mask"]
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        flat_nll = sequence_mean_nll(outputs.logits, labels)  # (R,)
        # Back to (groups, K); empty slots hold 0 and are masked inside the loss.
        nll = torch.zeros(mask.shape, dtype=flat_nll.dtype, device=flat_nll.device).masked_scatter(mask, flat_nll)
        loss = stable_alignment_loss(
            nll,
            inputs["ratings"].to(nll.device),
            mask,
            margin=self.margin,
            rating_scale=self.rating_scale,
            ratio=self.ratio,
            reduce=self.reduce,  # type: ignore[arg-type]
        )
        return (loss, outputs) if return_outputs else loss


def make_stable_args(cfg: Any) -> Any:
    from transformers import TrainingArguments

    from .arguments import training_kwargs

    # remove_unused_columns=False: the collator needs "ratings", which is not a forward() argument.
    return TrainingArguments(**training_kwargs(cfg), remove_unused_columns=False)


def build_stable_trainer(
    cfg: Any, args: Any, model: Any, tokenizer: Any, records: list[Any]
) -> StableAlignmentTrainer:
    """A StableAlignmentTrainer on `records` (validated `data.Located` items) for `cfg`."""
    from .data import to_groups, tokenize_groups

    groups = to_groups(records, rating_scale=cfg.rating_scale, max_responses=cfg.max_responses)
    rows = tokenize_groups(tokenizer, groups, max_length=cfg.max_length)
    return StableAlignmentTrainer(
        model=model,
        args=args,
        train_dataset=GroupDataset(rows),
        data_collator=GroupCollator(tokenizer.pad_token_id, pad_to_multiple_of=8 if torch.cuda.is_available() else None),
        processing_class=tokenizer,
        rating_scale=cfg.rating_scale,
        ratio=cfg.ratio,
        margin=cfg.margin,
        reduce=cfg.reduce,
    )
