"""`selfalign tiny-model DIR`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="write a small random Qwen2 model with tokenizer and chat template (for tests and dry runs)",
        description="Example: selfalign tiny-model /tmp/tiny && selfalign serve --model hf:/tmp/tiny",
    )
    p.add_argument("dir", help="output folder")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfalign.llm.tiny import build_tiny_model

    out = build_tiny_model(
        args.dir, hidden_size=args.hidden_size, num_layers=args.layers, num_heads=args.heads, seed=args.seed
    )
    print(f"tiny model written to {out} (random weights: its text is meaningless)")
    return 0
