"""Stage 3, principle engraving: the reference's recipe (effective batch 768 by gradient
accumulation, 100 warm-up steps then linear decay), fitted to a small run, read back from the
trainer's own arguments and state."""

from __future__ import annotations

import json

import pytest

from selfalign.train.batching import plan_batch
from selfalign.train.config import load_config

NEED = {"model": "m", "data": ["d.jsonl"], "out": "o"}


def test_shipped_recipes_are_the_references():
    engrave = load_config("engrave", NEED)
    assert (engrave.method, engrave.lora, engrave.lora_r, engrave.lora_alpha, engrave.lora_dropout) == ("sft", True, 16, 16, 0.05)
    assert engrave.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (engrave.lr, engrave.epochs, engrave.max_length) == (4e-4, 1.0, 512)
    assert (engrave.effective_batch, engrave.schedule, engrave.warmup_steps) == (768, "linear", 100)
    assert load_config("distill", NEED).max_length == 768
    cpu = load_config("engrave-cpu", {**NEED, "max_steps": 3})  # flags still win over the recipe
    assert cpu.max_steps == 3 and cpu.lora_r == 16 and cpu.effective_batch == 768


def test_the_plan_fills_768_by_accumulation_and_says_what_a_small_run_uses():
    engrave = load_config("engrave", NEED)  # 8 rows a device
    big = plan_batch(engrave, rows=258_878, devices=2)  # the paper's 258,878 pairs
    assert (big.effective_batch, big.grad_accum, big.warmup_steps, big.note) == (768, 48, 100, None)
    assert big.steps == 338  # ceil(ceil(258878 / 16) / 48)
    small = plan_batch(engrave, rows=400, devices=1)
    assert (small.effective_batch, small.grad_accum, small.steps, small.warmup_steps) == (40, 5, 10, 3)
    assert "400 rows cannot fill 10 steps of the effective batch of 768; using 40" in small.note
    assert "warm-up cut from 100 to 3 steps" in small.note


def test_engraving_trains_with_the_planned_batch_and_schedule(tmp_path, tiny_model_dir):
    """On the tiny model: 20 rows, 1 a device, so an effective batch of 2 (1 x 2 accumulated) for
    10 steps; the learning rate climbs for 3 warm-up steps, then falls linearly to 0."""
    from selfalign.train.run import train

    data = tmp_path / "engrave.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": "You are a helpful, ethical and reliable assistant."},
        {"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}) + "\n"
        for i in range(20)))
    cfg = load_config("engrave", {"model": str(tiny_model_dir), "data": [str(data)], "out": str(tmp_path / "out"),
                                  "batch_size": 1, "max_length": 64, "logging_steps": 1, "save_steps": 100})
    summary = train(cfg)
    assert (summary["effective_batch"], summary["grad_accum"], summary["warmup_steps"], summary["steps"]) == (2, 2, 3, 10)
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    lrs = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    peak = 4e-4
    # step k trains at the rate of k - 1 steps done: warm-up (k - 1)/3 of the peak, then (10 - (k - 1))/7
    expected = [peak * k / 3 for k in (0, 1, 2, 3)] + [peak * (10 - k) / 7 for k in range(4, 10)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert state["global_step"] == 10
