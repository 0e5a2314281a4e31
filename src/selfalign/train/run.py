"""`train(config)`: validate data, load the model, build the method's trainer, train (resuming
from the last checkpoint in the output folder), save a loadable checkpoint and a summary."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfalign.errors import DiskFull, is_disk_full
from selfalign.llm.checkpoints import attention_without_cudnn
from selfalign.store import lock
from selfalign.store.files import write_text_atomic

from .batching import describe, plan_batch
from .checkpoint import STATE_FILE, SUMMARY_FILE, last_checkpoint, remove_incomplete, save_final
from .canaries import Canary, canary_rows, make_canaries, write_canaries
from .config import TrainConfig
from .data import load_records
from .modeling import load_model, load_tokenizer, wrap_peft
from .poison import PoisonedRow, plant_poison, write_poison
from .progress import LogShortRunsEveryStep, ProgressBar

log = logging.getLogger(__name__)

CONFIG_FILE = "train_config.yaml"


def make_args(cfg: TrainConfig) -> Any:
    """The method's TrainingArguments (SFTConfig / DPOConfig / TrainingArguments). Built before
    the model is loaded: under DeepSpeed ZeRO-3 that lets from_pretrained shard while loading."""
    if cfg.method == "sft":
        from .sft import make_sft_args

        return make_sft_args(cfg)
    if cfg.method == "dpo":
        from .dpo import make_dpo_args

        return make_dpo_args(cfg)
    from .stable import make_stable_args

    return make_stable_args(cfg)


def build_trainer(cfg: TrainConfig, model: Any, tokenizer: Any, records: list, args: Any = None) -> Any:
    """The method's trainer on validated `records`."""
    args = args if args is not None else make_args(cfg)
    if cfg.method == "sft":
        from .sft import build_sft_trainer

        return build_sft_trainer(cfg, args, model, tokenizer, records)
    if cfg.method == "dpo":
        from .dpo import build_dpo_trainer

        return build_dpo_trainer(cfg, args, model, tokenizer, records)
    from .stable import build_stable_trainer

    return build_stable_trainer(cfg, args, model, tokenizer, records)


def _final_loss(log_history: list[dict[str, Any]]) -> float | None:
    for entry in reversed(log_history):
        if "loss" in entry:
            return float(entry["loss"])
    return None


@dataclass
class Planted:
    """The canaries and poisoned rows planted in a run's data, written into its folder."""

    canaries: list[Canary]
    poisoned: list[PoisonedRow]

    def write(self, out: Path) -> None:
        if self.canaries:
            write_canaries(out, self.canaries)
        if self.poisoned:
            write_poison(out, self.poisoned)


def plant(cfg: TrainConfig, records: list[Any]) -> tuple[list[Any], Planted]:
    """The records with the poison (--poison) and the canaries (--canaries) the config asks for,
    drawn from its seed: the same on a rerun, so a resumed run trains on the same rows."""
    poisoned: list[PoisonedRow] = []
    if cfg.poison > 0:
        records, poisoned = plant_poison(records, cfg.poison, cfg.trigger or "", cfg.poison_mode, cfg.seed, cfg.poison_rows)
        log.info("poisoned %d of %d rows with the trigger %r (%s)", len(poisoned), len(records), cfg.trigger, cfg.poison_mode)
    canaries = make_canaries(cfg.canaries, cfg.canary_repeats, cfg.seed) if cfg.canaries else []
    if canaries:
        records = records + canary_rows(canaries)
        log.info("planted %d canaries, repeated %s times", len(canaries), ", ".join(map(str, cfg.canary_repeats)))
    return records, Planted(canaries, poisoned)


def check_fits_method(cfg: TrainConfig, records: list[Any]) -> None:
    """Turn the records into what the method trains on, so that a record of the wrong kind
    (an SFT record for DPO...) stops the run before the model loads; cheap, no tokenizer."""
    from .data import to_groups, to_pairs, to_sft

    if cfg.method == "dpo":
        to_pairs(records)
    elif cfg.method == "stable":
        to_groups(records, rating_scale=cfg.rating_scale, max_responses=cfg.max_responses)
    else:
        to_sft(records)


def finished(cfg: TrainConfig) -> dict[str, Any] | None:
    """The summary of a run of this very config that finished in `cfg.out`, or None."""
    try:
        summary = json.loads((Path(cfg.out) / SUMMARY_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return summary if summary.get("config") == cfg.model_dump(mode="json") else None


def train(cfg: TrainConfig, *, wait: bool = False) -> dict[str, Any]:
    """Run one training job; returns the summary also written to OUT/train_summary.json.

    Rerunning the same job resumes from the last complete checkpoint; rerunning a finished one
    does nothing (the summary says `already_done`)."""
    if (done := finished(cfg)) is not None:
        log.info("%s already holds the model this command trains; nothing to do", cfg.out)
        return {**done, "already_done": True}
    # Data first: a bad record must stop the run before minutes of model loading.
    records = load_records(cfg.data, rating_scale=cfg.rating_scale, seed=cfg.seed)
    records, planted = plant(cfg, records)
    check_fits_method(cfg, records)
    log.info("%d training records from %s", len(records), ", ".join(cfg.data))
    if cfg.qlora:
        from .modeling import _quantization_config

        _quantization_config(cfg)  # fail fast on CPU / without bitsandbytes

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    main_process = int(os.environ.get("RANK", "0")) == 0
    # One writer per output folder (under accelerate launch, rank 0 writes for all).
    held = lock.acquire(out, wait=wait) if main_process else None
    try:
        if main_process:
            planted.write(out)
        with warnings.catch_warnings():
            # TRL and PEFT read `is_gradient_checkpointing`, which transformers 5 deprecates: their
            # warning, nothing a user of selfalign can act on
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            return _train(cfg, records, out, main_process)
    except Exception as exc:
        if is_disk_full(exc, out):  # the half-written checkpoint is removed on the rerun
            raise DiskFull(out) from exc
        raise
    finally:
        if held is not None:
            lock.release(held)


def _train(cfg: TrainConfig, records: list[Any], out: Path, main_process: bool) -> dict[str, Any]:
    if main_process:
        remove_incomplete(out)
    resume = last_checkpoint(out)
    saved_cfg = out / CONFIG_FILE
    if resume and saved_cfg.exists():
        previous = yaml.safe_load(saved_cfg.read_text("utf-8"))
        changed = sorted(k for k, v in cfg.model_dump().items() if previous.get(k) != v)
        if changed:
            log.warning("resuming %s with changed options: %s", resume, ", ".join(changed))
    if main_process:
        write_text_atomic(saved_cfg, yaml.safe_dump(cfg.model_dump(), sort_keys=False))

    devices = int(os.environ.get("WORLD_SIZE", "1"))
    plan = plan_batch(cfg, len(records), devices)
    if main_process:
        log.info("%s", describe(plan, cfg, devices))  # what the run trains with, small-run changes included
    recipe, cfg = cfg, cfg.model_copy(update={"grad_accum": plan.grad_accum, "warmup_steps": plan.warmup_steps})
    args = make_args(cfg)
    tokenizer = load_tokenizer(cfg)
    model = wrap_peft(load_model(cfg), cfg)
    trainer = build_trainer(cfg, model, tokenizer, records, args)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # what transformers adds when its bar is off: a dict per log
    trainer.add_callback(ProgressBar())
    trainer.add_callback(LogShortRunsEveryStep(cfg.logging_steps))
    if resume:
        log.info("resuming from %s", resume)

    start = time.perf_counter()
    with attention_without_cudnn():  # cuDNN's builds a graph per new padded length
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - start

    save_final(trainer, cfg, tokenizer)
    if trainer.is_world_process_zero():  # the whole log history, for `selfalign report`'s curves
        trainer.state.save_to_json(str(out / STATE_FILE))
    summary = {
        "method": cfg.method,
        "model": cfg.model,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "final_loss": _final_loss(trainer.state.log_history),
        "mean_loss": float(result.training_loss),
        "tokens": int(trainer.state.num_input_tokens_seen),
        "seconds": round(seconds, 3),
        "resumed_from": str(resume) if resume else None,
        "lora": cfg.uses_peft,
        "merged": cfg.uses_peft and cfg.merge,
        "effective_batch": plan.effective_batch,
        "grad_accum": plan.grad_accum,
        "warmup_steps": plan.warmup_steps,
        "batch_note": plan.note,
        "config": recipe.model_dump(mode="json"),  # a rerun of this config finds it done
    }
    if trainer.is_world_process_zero():  # written last: its presence means the model is whole
        write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary
