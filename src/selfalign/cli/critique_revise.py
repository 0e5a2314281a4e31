"""`selfalign critique-revise`: the Constitutional-AI style baseline."""

from __future__ import annotations

import argparse
from functools import partial

from selfalign.methods.critique import CritiqueConfig, load_principles, run_item
from selfalign.methods.critique.steps import PROMPTS_DIR
from selfalign.methods.prompts import Prompts

from .generate import add_generator_options, run_generator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "critique-revise",
        help="answer, critique against a principle, revise (SFT and preference data)",
        description="Example: selfalign critique-revise --model hf:/tmp/tiny --prompts prompts.jsonl --out runs/cr1",
    )
    add_generator_options(p)
    p.add_argument("--principles", default=None, help="JSONL of {name, critique, revision} (default: shipped set)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = CritiqueConfig(
        seed=args.seed,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        principles_file=args.principles,
        templates=args.templates,
    )
    principles = load_principles(config.principles_file)  # checked before any model call
    prompts = Prompts(PROMPTS_DIR, config.templates)
    return run_generator(
        args,
        "critique-revise",
        config,
        lambda model: partial(run_item, model=model, config=config, principles=principles, prompts=prompts),
    )
