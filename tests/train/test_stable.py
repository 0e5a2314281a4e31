"""The Stable Alignment trainer: many groups in one forward pass, same loss as one group at a time."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import losses_on_one_batch

from selfalign.train.config import TrainConfig
from selfalign.train.data import load_records
from selfalign.train.losses import sequence_mean_nll, stable_alignment_loss
from selfalign.train.modeling import load_model, load_tokenizer
from selfalign.train.stable import GroupCollator, build_stable_trainer, make_stable_args


@pytest.fixture()
def stable_trainer(tiny_lm, data_dir, tmp_path):
    cfg = TrainConfig(method="stable", model=str(tiny_lm), data=[str(data_dir / "groups.jsonl")],
                      out=str(tmp_path / "out"), batch_size=3, warmup_ratio=0.0)
    tok = load_tokenizer(cfg)
    return build_stable_trainer(cfg, make_stable_args(cfg), load_model(cfg), tok, load_records(cfg.data))


def test_collator_flattens_groups_without_dummy_rows():
    rows = [
        {"input_ids": [[5, 6, 7], [5, 6]], "labels": [[-100, 6, 7], [-100, 6]], "ratings": [7.0, 2.0]},
        {"input_ids": [[5, 8, 9, 10]], "labels": [[-100, -100, 9, 10]], "ratings": [4.0]},
    ]
    batch = GroupCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [5, 6, 0, 0], [5, 8, 9, 10]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100], [-100, 6, -100, -100], [-100, -100, 9, 10]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["response_mask"].tolist() == [[True, True], [True, False]]
    assert batch["ratings"][0].tolist() == [7.0, 2.0] and batch["ratings"][1, 0].item() == 4.0
    padded = GroupCollator(pad_token_id=0, pad_to_multiple_of=8)(rows)
    assert padded["input_ids"].shape == (3, 8)


def test_batched_loss_equals_mean_of_one_group_at_a_time(stable_trainer):
    trainer = stable_trainer
    model = trainer.model.eval()
    rows = [trainer.train_dataset[i] for i in range(4)]  # groups of 3, 2, 3, 2 responses
    with torch.no_grad():
        batched = trainer.compute_loss(model, trainer.data_collator(rows))
        single = []
        for row in rows:  # the reference way: one group per forward pass, loss by hand
            b = trainer.data_collator([row])
            nll = sequence_mean_nll(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                    b["labels"])
            single.append(stable_alignment_loss(nll.view(1, -1), b["ratings"], b["response_mask"]))
    assert batched.item() == pytest.approx(torch.stack(single).mean().item(), rel=1e-5)


def test_loss_goes_down_on_one_batch_and_runs_one_forward(stable_trainer):
    trainer = stable_trainer
    model = trainer.model.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    losses = losses_on_one_batch(trainer, model, batch, steps=6)
    hook.remove()
    assert len(calls) == 6  # one forward per step for all groups and responses
    assert losses[-1] < losses[0] - 0.1, losses


def test_group_by_length_batches_similar_groups(tiny_lm, data_dir, tmp_path):
    cfg = TrainConfig(method="stable", model=str(tiny_lm), data=[str(data_dir / "groups.jsonl")],
                      out=str(tmp_path / "out"), batch_size=2, group_by_length=True)
    trainer = build_stable_trainer(cfg, make_stable_args(cfg), load_model(cfg), load_tokenizer(cfg),
                                   load_records(cfg.data))
    sampler = trainer._get_train_sampler()
    assert type(sampler).__name__ == "LengthGroupedSampler" and sorted(sampler) == list(range(6))
