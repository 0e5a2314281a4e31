"""`selfalign tiny-model DIR`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="write a tiny Qwen2 model with tokenizer and chat template that ends its turns (for tests and dry runs)",
        description="Example: selfalign tiny-model /tmp/tiny && selfalign serve --model hf:/tmp/tiny",
    )
    p.add_argument("dir", help="output folder")
    p.add_argument("--hidden-size", type=int, default=64,
                   help="width of the model (default 64); hidden-size/heads is the head size, which vLLM's CPU build wants at 64 or more: --hidden-size 128 --heads 2")
    p.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4; key-value heads: half)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the chat training (default 0)")
    p.add_argument(
        "--chat-steps", type=int, default=120,
        help="training steps on short chats that teach it to end its turns (default 120; 0: random weights)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfalign.llm.tiny import build_tiny_model

    out = build_tiny_model(
        args.dir, hidden_size=args.hidden_size, num_layers=args.layers, num_heads=args.heads, seed=args.seed,
        chat_steps=args.chat_steps,
    )
    print(f"tiny model written to {out} (its text is meaningless; it ends most turns after a sentence)")
    return 0
