"""Checkpoints: find the last complete one to resume from; write the final model (merging LoRA).

The Trainer writes `checkpoint-N/` file by file, `trainer_state.json` last. A process killed
while it writes leaves a folder without that file, or with half of it; such a folder is never
resumed from (transformers' own `get_last_checkpoint` takes the highest N, complete or not),
and is removed before training goes on.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from .config import TrainConfig

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.json"  # the Trainer writes it last into a checkpoint
SUMMARY_FILE = "train_summary.json"  # written last by a finished run: the model is whole
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every `checkpoint-N` folder in `out`, newest first."""
    p = Path(out)
    if not p.is_dir():
        return []
    found = [(int(m.group(1)), d) for d in p.iterdir() if d.is_dir() and (m := _CHECKPOINT.match(d.name))]
    return sorted(found, reverse=True)


def is_complete(step: int, folder: Path) -> bool:
    """Whether the Trainer finished writing this checkpoint: its last file is whole and names its step."""
    try:
        state = json.loads((folder / STATE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == step


def last_checkpoint(out: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` folder in `out`, or None."""
    return next((folder for step, folder in checkpoints(out) if is_complete(step, folder)), None)


def remove_incomplete(out: str | Path) -> list[Path]:
    """Delete the checkpoint folders a killed run left half-written (their steps are redone)."""
    removed = [folder for step, folder in checkpoints(out) if not is_complete(step, folder)]
    for folder in removed:
        log.warning("removing %s: its writing was interrupted", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return removed


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
