"""`selfalign critique-revise`: the Constitutional-AI style baseline."""

from __future__ import annotations

import argparse
from functools import partial

from selfalign.methods.critique import CritiqueConfig, load_exemplars, load_principles, run_item
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
    p.add_argument(
        "--exemplars", default=None,
        help="JSONL of few-shot exemplars {request, answer, critique_request, critique, revision_request, revision} "
        "shown before each critique and revision (default: shipped set; 'none' for no exemplars)",
    )
    p.add_argument(
        "--revision-start", default=None, metavar="TEXT",
        help="start every revision with TEXT and let the model continue it (hf: and scripted: models); "
        "for small models that echo their critique instead of revising (default: none)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = CritiqueConfig(
        seed=args.seed,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        principles_file=args.principles,
        exemplars_file=args.exemplars,
        revision_start=args.revision_start,
        templates=args.templates,
    )
    principles = load_principles(config.principles_file)  # checked before any model call
    exemplars = [] if config.exemplars_file == "none" else load_exemplars(config.exemplars_file)
    prompts = Prompts(PROMPTS_DIR, config.templates)
    return run_generator(
        args,
        "critique-revise",
        config,
        lambda model: partial(run_item, model=model, config=config, principles=principles, prompts=prompts, exemplars=exemplars),
    )
