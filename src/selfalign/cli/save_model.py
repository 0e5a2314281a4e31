"""`selfalign save-model SPEC DIR`."""

from __future__ import annotations

import argparse

from selfalign.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "save-model",
        help="write any model hf: loads (a GGUF file, smollm2, a hub id) as a plain Hugging Face checkpoint",
        description=(
            "Writes safetensors weights, config, tokenizer and chat template, which `hf:DIR`, "
            "`selfalign train --model DIR` and vLLM load. Example: selfalign save-model hf:smollm2 models/smollm2"
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="an hf: model spec, e.g. hf:smollm2 or hf:models/model.Q4_K_M.gguf")
    p.add_argument("dir", metavar="DIR", help="output folder (new or empty)")
    p.add_argument(
        "--dtype", default="auto",
        help="weights' dtype: auto (as loaded; GGUF files are dequantised to float32), float32, bfloat16, float16",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfalign.llm.checkpoints import save_checkpoint

    kind, _, target = args.spec.partition(":")
    if kind != "hf" or not target:
        raise UserError(f"save-model takes an hf: spec (hf:ID_OR_PATH, hf:FILE.gguf, hf:smollm2), got {args.spec!r}")
    out = save_checkpoint(target, args.dir, dtype=args.dtype)
    print(f"saved {args.spec} to {out}: load it with hf:{out}")
    return 0
