"""Each method trains on the tiny model: finite, decreasing loss; weights change; the checkpoint
reloads with AutoModelForCausalLM; LoRA merges; rerunning resumes."""

from __future__ import annotations

import json

import pytest
import torch
from train_fixtures import losses_on_one_batch
from transformers import AutoModelForCausalLM

from selfalign.train.config import TrainConfig
from selfalign.train.data import load_records
from selfalign.train.modeling import load_model, load_tokenizer, wrap_peft
from selfalign.train.run import build_trainer, train

DATA = {"sft": "sft.jsonl", "stable": "groups.jsonl", "dpo": "prefs.jsonl"}


def _cfg(method, tiny_lm, data_dir, out, **kw):
    base = dict(method=method, model=str(tiny_lm), data=[str(data_dir / DATA[method])], out=str(out),
                max_steps=3, batch_size=2, lr=1e-3, warmup_ratio=0.0, logging_steps=1, save_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["sft", "stable", "dpo"])
def test_trains_saves_and_reloads(method, tiny_lm, data_dir, tmp_path):
    before = _weights(AutoModelForCausalLM.from_pretrained(str(tiny_lm)))
    out = tmp_path / method
    summary = train(_cfg(method, tiny_lm, data_dir, out))
    assert summary["steps"] == 3 and summary["tokens"] > 0 and summary["seconds"] > 0
    assert summary["final_loss"] is not None and torch.isfinite(torch.tensor(summary["final_loss"]))
    assert json.loads((out / "train_summary.json").read_text())["method"] == method
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))
    after = _weights(reloaded)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (out / "checkpoint-2").is_dir()  # save_steps=2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_trl_loss_goes_down_on_one_batch(method, tiny_lm, data_dir, tmp_path):
    cfg = _cfg(method, tiny_lm, data_dir, tmp_path / "o")
    tok = load_tokenizer(cfg)
    trainer = build_trainer(cfg, load_model(cfg), tok, load_records(cfg.data))
    ds = trainer.train_dataset
    if method == "sft":
        # loss only on the assistant's tokens
        labels = ds[0]["labels"]
        assert labels[0] == -100
        assert tok.decode([t for t in labels if t != -100]).endswith("<|im_end|>\n")
        assert tok.decode([t for t in labels if t != -100]).count("<|im_start|>") == 0
    cols = [c for c in ds.column_names if c not in ("prompt", "chosen", "rejected", "messages")]
    batch = trainer.data_collator([{c: ds[i][c] for c in cols} for i in range(3)])
    losses = losses_on_one_batch(trainer, trainer.model.train(), batch, steps=5)
    assert losses[-1] < losses[0], losses


def test_lora_merge_and_no_merge(tiny_lm, data_dir, tmp_path):
    merged = tmp_path / "merged"
    summary = train(_cfg("stable", tiny_lm, data_dir, merged, lora=True, lora_r=4, lr=1e-2))
    assert summary["lora"] and summary["merged"]
    assert not (merged / "adapter_config.json").exists() and (merged / "adapter" / "adapter_config.json").exists()
    base = _weights(AutoModelForCausalLM.from_pretrained(str(tiny_lm)))
    plain = AutoModelForCausalLM.from_pretrained(str(merged))
    assert type(plain).__name__ == "Qwen2ForCausalLM"
    assert set(_weights(plain)) == set(base)
    assert any(not torch.equal(base[k], v) for k, v in _weights(plain).items())

    adapter_only = tmp_path / "adapter"
    train(_cfg("sft", tiny_lm, data_dir, adapter_only, lora=True, merge=False, lora_target_modules=["q_proj", "v_proj"]))
    assert (adapter_only / "adapter_config.json").exists()
    assert AutoModelForCausalLM.from_pretrained(str(adapter_only)) is not None  # transformers loads the adapter


def test_gradient_checkpointing_with_lora(tiny_lm, data_dir, tmp_path):
    cfg = _cfg("stable", tiny_lm, data_dir, tmp_path / "gc", lora=True, gradient_checkpointing=True, max_steps=1)
    model = wrap_peft(load_model(cfg), cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < 20_000
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train(cfg)["steps"] == 1
    # TRL's and PEFT's reads of a property transformers deprecates are not shown to the user
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_rerun_resumes_from_last_checkpoint(tiny_lm, data_dir, tmp_path):
    out = tmp_path / "resume"
    first = train(_cfg("stable", tiny_lm, data_dir, out, max_steps=2, save_steps=2))
    assert first["resumed_from"] is None and (out / "checkpoint-2").is_dir()
    second = train(_cfg("stable", tiny_lm, data_dir, out, max_steps=4, save_steps=2))
    assert second["resumed_from"].endswith("checkpoint-2")
    assert second["steps"] == 4
    log_steps = [e["step"] for e in json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
                 if "loss" in e]
    assert log_steps == [1, 2, 3, 4]  # steps 1-2 from the first run, 3-4 after resuming


def test_qlora_on_cpu_is_a_clear_error(tiny_lm, data_dir, tmp_path):
    from selfalign.errors import UserError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="--qlora needs a CUDA GPU"):
        train(_cfg("sft", tiny_lm, data_dir, tmp_path / "q", qlora=True))


def test_training_steps_run_without_cudnn_attention(tiny_lm, data_dir, tmp_path, monkeypatch):
    """cuDNN's attention builds a graph per new padded length (benchmarks/train_bench.py on a
    GPU: SFT 2.2x faster without it); the setting is restored after training."""
    from transformers import Trainer

    seen: list[bool] = []
    step = Trainer.training_step

    def recording_step(self, *args, **kwargs):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", recording_step)
    train(_cfg("sft", tiny_lm, data_dir, tmp_path / "sft", max_steps=2, save_steps=10))
    assert len(seen) == 2 and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()


@pytest.mark.parametrize(("logging_steps", "logged"), [(None, [1, 2, 3, 4]), (2, [1, 2, 4])])
def test_a_short_run_logs_every_step_unless_told_otherwise(logging_steps, logged, tiny_lm, data_dir, tmp_path):
    out = tmp_path / "o"
    train(_cfg("sft", tiny_lm, data_dir, out, max_steps=4, logging_steps=logging_steps, save_steps=10))
    state = json.loads((out / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == logged
