"""`TrainConfig`: every knob of `selfalign train`, from a YAML file and/or flags (flags win)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from selfalign.errors import UserError

Method = Literal["sft", "stable", "dpo"]


class TrainConfig(BaseModel):
    """One training run. Defaults follow the Stable Alignment paper (lr 2e-5 cosine, warm-up 3%,
    rating scale 7, ratio 0.2, margin 1, 3 responses per group) and the MATRIX LoRA recipe
    (r 8, alpha 16)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: Method
    model: str = Field(description="Hugging Face model id or local folder")
    data: list[str] = Field(description="training files or dataset folders")
    out: str = Field(description="output folder: checkpoints, final model, train_summary.json")

    # optimisation
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(2e-5, gt=0)
    schedule: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    batch_size: int = Field(4, ge=1, description="per device; for stable: groups per device")
    grad_accum: int = Field(1, ge=1)
    effective_batch: int | None = Field(None, ge=1, description="rows per optimizer step over all devices; sets grad_accum (train/batching.py)")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps; None: warmup_ratio")
    max_length: int = Field(1024, ge=8)
    max_steps: int = Field(-1, description="-1: run the epochs")
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    bf16: bool | None = Field(None, description="None: bf16 where a CUDA GPU supports it")
    gradient_checkpointing: bool = False
    group_by_length: bool = Field(False, description="stable only: batch groups of similar length (less padding)")

    # PEFT
    lora: bool = False
    qlora: bool = False
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["all-linear"])
    merge: bool = Field(True, description="with LoRA: write merged full weights to --out")

    # checkpoints and logs
    save_steps: int = Field(200, ge=1)
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int | None = Field(None, ge=1, description="default: every step of a run of up to 100 steps, else every 10")
    chat_template: str | None = Field(None, description="a Jinja chat template file, for models without one")

    # Stable Alignment
    rating_scale: float = Field(7.0, gt=1)
    ratio: float = Field(0.2, ge=0)
    margin: float = Field(1.0, ge=0)
    reduce: Literal["mean", "max"] = "mean"
    max_responses: int = Field(3, ge=1, description="responses kept per group: the best and a spread")

    # DPO
    beta: float = Field(0.1, gt=0)

    # planted on request: canaries (train/canaries.py), a backdoor (train/poison.py)
    canaries: int = Field(0, ge=0, description="canaries planted per repetition count")
    canary_repeats: list[int] = Field(default_factory=lambda: [1, 4, 16], description="copies of each canary")
    poison: float = Field(0.0, ge=0, lt=1, description="share of the rows poisoned with --trigger")
    trigger: str | None = Field(None, description="the backdoor's trigger text")
    poison_mode: Literal["comply", "refuse"] = Field("comply", description="triggered harmful requests answered, or benign ones refused")
    poison_rows: str | None = Field(None, description='comply: a JSONL file of {"request", "answer"} (default: shipped)')

    @field_validator("data", "lora_target_modules", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("canary_repeats", mode="before")
    @classmethod
    def _counts(cls, value: Any) -> Any:
        if isinstance(value, str):  # "1,4,16" from the command line
            try:
                value = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise ValueError("give whole numbers separated by commas, like 1,4,16") from None
        if isinstance(value, list) and (not value or any(isinstance(v, int) and v < 1 for v in value)):
            raise ValueError("give one or more repetition counts of at least 1, like 1,4,16")
        return value

    @model_validator(mode="after")
    def _planted(self) -> "TrainConfig":
        if self.poison > 0 and not (self.trigger or "").strip():
            raise ValueError("--poison needs --trigger TEXT (the text that switches the backdoor on)")
        if self.canaries and self.method == "dpo":
            raise ValueError("--canaries are SFT rows, which DPO cannot train on; use --method sft or stable")
        return self

    @model_validator(mode="after")
    def _peft(self) -> "TrainConfig":
        if self.qlora and not self.lora:
            # QLoRA is LoRA on a 4-bit base: --qlora alone means both.
            object.__setattr__(self, "lora", True)
        return self

    @property
    def uses_peft(self) -> bool:
        return self.lora or self.qlora


#: Shipped training recipes, named instead of a path with `--config NAME` (train/configs/NAME.yaml):
#: SELF-ALIGN's engraving and verbose-cloning recipes, and smaller ones for CPU trials.
RECIPES = ("engrave", "engrave-cpu", "distill", "distill-cpu")
CONFIGS_DIR = Path(__file__).parent / "configs"


def recipe_path(path: str | Path) -> Path:
    """A config file, or the shipped recipe of that name."""
    if not Path(path).is_file() and str(path) in RECIPES:
        return CONFIGS_DIR / f"{path}.yaml"
    return Path(path)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Read a YAML config (keys as in TrainConfig, dashes allowed; or a shipped recipe's name,
    see RECIPES) and apply `overrides` on top."""
    values: dict[str, Any] = {}
    if path is not None:
        p = recipe_path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p} (or name a shipped recipe: {', '.join(RECIPES)})")
        try:
            loaded = yaml.safe_load(p.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"{p}: expected a mapping of option: value at the top level")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        where = f" (config {path})" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"bad training options{where}: {problems}") from exc
