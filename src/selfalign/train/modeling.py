"""Load the model and tokenizer to train; LoRA / QLoRA through PEFT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfalign.errors import UserError
from selfalign.llm.checkpoints import as_plain_model, locate
from selfalign.llm.extras import require

from .config import TrainConfig

log = logging.getLogger(__name__)


def use_bf16(cfg: TrainConfig) -> bool:
    """bf16 as asked; when not said, wherever a CUDA GPU supports it (the paper trained in bf16)."""
    import torch

    if cfg.bf16 is not None:
        return cfg.bf16
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def load_tokenizer(cfg: TrainConfig) -> Any:
    from transformers import AutoTokenizer

    checkpoint = locate(cfg.model)
    try:
        tok = AutoTokenizer.from_pretrained(checkpoint.source, **checkpoint.options())
    except OSError as exc:
        raise UserError(f"cannot load a tokenizer from --model {cfg.model!r}: {exc}") from exc
    if cfg.chat_template:
        path = Path(cfg.chat_template)
        if not path.is_file():
            raise UserError(f"--chat-template file not found: {path}")
        tok.chat_template = path.read_text("utf-8")
    if not tok.chat_template:
        raise UserError(
            f"{cfg.model} has no chat template, so prompts and answers cannot be told apart; "
            "pass --chat-template FILE (a Jinja template, e.g. ChatML)"
        )
    if tok.pad_token is None:
        # Padding is masked out everywhere, so reusing EOS is safe and needs no new embedding.
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def _quantization_config(cfg: TrainConfig) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise UserError("--qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); on this machine use --lora instead")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise UserError("--qlora needs bitsandbytes: pip install bitsandbytes") from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if use_bf16(cfg) else torch.float16,
    )


def load_model(cfg: TrainConfig, *, quantize: bool = True) -> Any:
    """The causal LM to train, in bf16 when training in bf16 (fp32 otherwise); 4-bit for QLoRA.
    Like `hf:`, --model takes a folder, a hub id, a .gguf file (dequantised) or `smollm2`."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if use_bf16(cfg) else torch.float32}
    if cfg.qlora and quantize:
        kwargs["quantization_config"] = _quantization_config(cfg)
    checkpoint = locate(cfg.model)
    try:
        model = AutoModelForCausalLM.from_pretrained(checkpoint.source, **checkpoint.options(), **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load --model {cfg.model!r}: {exc}") from exc
    if checkpoint.gguf_file:
        as_plain_model(model, cfg.model)
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    return model


def wrap_peft(model: Any, cfg: TrainConfig) -> Any:
    """Wrap `model` with a LoRA adapter (QLoRA: after preparing the 4-bit model for training)."""
    if not cfg.uses_peft:
        return model
    peft = require("peft", "train")
    if cfg.qlora:
        model = peft.prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    targets: list[str] | str = cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = peft.LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
    )
    try:
        model = peft.get_peft_model(model, lora)
    except ValueError as exc:
        raise UserError(f"LoRA: {exc} (check --lora-target-modules)") from exc
    if cfg.gradient_checkpointing:
        # With frozen embeddings nothing upstream requires grad and checkpointed blocks get none.
        model.enable_input_require_grads()
    return model
