"""Checkpoints: find the last one to resume from; write the final model (merging LoRA)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from .config import TrainConfig

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"


def last_checkpoint(out: str | Path) -> Path | None:
    """The newest `checkpoint-N` folder in `out` that holds a trainer state, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    p = Path(out)
    if not p.is_dir():
        return None
    found = get_last_checkpoint(str(p))
    return Path(found) if found else None


def save_final(trainer: Any, cfg: TrainConfig, tokenizer: Any) -> None:
    """Write the trained model to `cfg.out` so that `AutoModelForCausalLM.from_pretrained(out)`
    loads it: full weights; with LoRA either merged full weights (default) or the adapter
    (`--no-merge`, which then needs peft and the base model to load). Tokenizer and chat
    template go with it."""
    out = Path(cfg.out)
    if not cfg.uses_peft or not cfg.merge:
        # save_model gathers ZeRO-3 / FSDP shards and writes on the main process only.
        _restore_cache_flag(trainer.model)
        trainer.save_model(str(out))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(str(out))
        return

    adapter = out / ADAPTER_DIR
    trainer.save_model(str(adapter))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    # Merge into a freshly loaded, unquantised base: merging into 4-bit (QLoRA) weights would
    # round the update away, and the training copy may be sharded.
    gc.collect()
    from peft import PeftModel

    from .modeling import load_model

    base = load_model(cfg, quantize=False)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    log.info("merged LoRA weights written to %s (adapter kept in %s)", out, adapter)


def _restore_cache_flag(model: Any) -> None:
    # Training turned the KV cache off; the saved model is for generation, so turn it back on.
    config = getattr(model, "config", None)
    if config is not None:
        config.use_cache = True
