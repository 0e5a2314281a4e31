"""`selfalign principles`: SELF-ALIGN stage 2, principle-driven self-alignment (Sun et al., 2023).

    selfalign principles --model hf:BASE --prompts runs/si1/prompts.jsonl --out runs/pd1
    selfalign export runs/pd1 --format sft --to data/engrave.jsonl      # stage 3 trains on this

A base model (no chat template, or --raw) is prompted with raw text, as the paper prompts one.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from selfalign.methods.principles import PROMPTS_DIR, PrinciplesConfig, load_exemplars, load_principles, use_raw
from selfalign.methods.principles import principled
from selfalign.methods.prompts import Prompts
from selfalign.store import load_items

from .generate import add_generator_options, run_generator
from .self_instruct import EXIT_KEPT_NOTHING, RAW_BY_DEFAULT, add_raw_option, kept_nothing


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "principles",
        help="SELF-ALIGN stage 2: answers after internal thoughts that name the principles that apply",
        description=("Example: selfalign principles --model hf:smollm2 --prompts runs/si1/prompts.jsonl --out runs/pd1; "
                     "then selfalign export runs/pd1 --format sft|thoughts"),
    )
    add_generator_options(p)
    add_raw_option(p, RAW_BY_DEFAULT)
    p.add_argument("--principles", default=None, help="JSONL of {id, name, text} (default: the 16 shipped principles)")
    p.add_argument("--exemplars", default=None, help="JSONL of {turns: [{user, thoughts, answer}], leaks} (default: the paper's five kinds; exemplars-with-refusal.jsonl adds a declined harmful request)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling")
    p.add_argument("--sorry-bias", type=float, default=-100.0,
                   help="logit bias on the token 'Sorry', so answers do not start with it (the reference's -100; 0: none)")
    p.add_argument("--identity", default=PrinciplesConfig.model_fields["identity"].default,
                   help="the self-identification line that opens the exemplars' thoughts; answers without it are dropped")
    p.add_argument("--ngram-penalties", type=ngram_penalties, default={}, metavar="N:P,...",
                   help="penalties on repeating n-grams of the continuation, e.g. 3:1,4:2 (default: none, as the reference)")
    p.set_defaults(func=run, temperature=0.5, max_tokens=256)


def ngram_penalties(text: str) -> dict[int, float]:
    """'3:1,4:2' -> {3: 1.0, 4: 2.0}; '' -> none."""
    try:
        pairs = [part.split(":") for part in text.split(",") if part.strip()]
        return {int(n): float(p) for n, p in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write n-gram sizes and penalties as N:P pairs, e.g. 3:1,4:2") from None


def run(args: argparse.Namespace) -> int:
    config = PrinciplesConfig(
        seed=args.seed, raw=args.raw, templates=args.templates, principles_file=args.principles,
        exemplars_file=args.exemplars, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
        sorry_bias=args.sorry_bias, identity=args.identity, ngram_penalties=args.ngram_penalties,
    )
    principles = load_principles(config.principles_file)  # every file checked before any model call
    exemplars = load_exemplars(config.exemplars_file, principles)
    prompts = Prompts(PROMPTS_DIR, config.templates)

    questions = [item.prompt for item in load_items(args.prompts, field_name=args.field, limit=args.limit)]

    def make_run_item(model):  # type: ignore[no-untyped-def]
        principled.check_fits(model, prompts, principles, exemplars, config, questions)
        bias, note = principled.sorry_bias(model, config.sorry_bias)
        if note:
            print(note)
        return partial(principled.run_item, model=model, config=config, principles=principles, exemplars=exemplars,
                       prompts=prompts, raw=use_raw(config.raw, model, prefer_raw=True), logit_bias=bias)

    code = run_generator(args, "principles", config, make_run_item, tally=principled.tally, plain_format=True)
    return check_kept(args.out, "principles", code, KEEP_MORE_STAGE2)


KEEP_MORE_STAGE2 = ("a chat model that loses the format: --raw (or --no-raw); a small model that answers with its "
                    "thoughts again: --ngram-penalties 3:4,4:8; fewer exemplars or shorter ones: --exemplars; more "
                    "room for the answer: --max-tokens; your own prompt: --templates")


def check_kept(out: str, stage: str, code: int, fix: str) -> int:
    """Exit 1, naming the reasons and the fix, when a finished run kept no answer."""
    summary = json.loads((Path(out) / "summary.json").read_text("utf-8"))
    if code == 0 and summary["items"]["done"] and not summary["kept"]:
        print(kept_nothing(stage, summary["dropped"], fix))
        return EXIT_KEPT_NOTHING
    return code
