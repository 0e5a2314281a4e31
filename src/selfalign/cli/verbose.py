"""`selfalign verbose`: SELF-ALIGN stage 4, verbose cloning (Sun et al., 2023).

    selfalign verbose --model hf:ckpt/engraved --prompts runs/si1/prompts.jsonl --out runs/vb1
    selfalign export runs/vb1 --format sft --to data/verbose.jsonl      # trains the base model again
"""

from __future__ import annotations

import argparse
from functools import partial

from selfalign.methods.principles import PROMPTS_DIR, VerboseConfig, use_raw
from selfalign.methods.principles import verbose
from selfalign.methods.prompts import Prompts

from .generate import add_generator_options, run_generator
from .principles import check_kept
from .self_instruct import add_raw_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verbose",
        help="SELF-ALIGN stage 4: the engraved model answers again, thoroughly (context distillation data)",
        description="Example: selfalign verbose --model hf:ckpt/engraved --prompts runs/si1/prompts.jsonl --out runs/vb1",
    )
    add_generator_options(p)
    add_raw_option(p)
    p.add_argument("--top-p", type=float, default=0.7, help="nucleus sampling")
    p.add_argument("--min-chars", type=int, default=128, help="shorter answers are dropped (the paper's rule)")
    p.set_defaults(func=run, temperature=0.3, max_tokens=512)


def run(args: argparse.Namespace) -> int:
    config = VerboseConfig(seed=args.seed, raw=args.raw, templates=args.templates, temperature=args.temperature,
                           top_p=args.top_p, max_tokens=args.max_tokens, min_chars=args.min_chars)
    prompts = Prompts(PROMPTS_DIR, config.templates)

    def make_run_item(model):  # type: ignore[no-untyped-def]
        return partial(verbose.run_item, model=model, config=config, prompts=prompts, raw=use_raw(config.raw, model))

    code = run_generator(args, "verbose", config, make_run_item, tally=verbose.tally, plain_format=True)
    return check_kept(args.out, "verbose", code, KEEP_MORE_STAGE4)


KEEP_MORE_STAGE4 = "more room for the answer: --max-tokens; a lower floor: --min-chars; your own prompt: --templates"
