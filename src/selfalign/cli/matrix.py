"""`selfalign matrix`: MATRIX social scene simulation, then revision (SFT, preference and
simulation data)."""

from __future__ import annotations

import argparse
from functools import partial

from selfalign.methods.matrix import MatrixConfig, run_item
from selfalign.methods.matrix.calls import PROMPTS_DIR
from selfalign.methods.prompts import Prompts

from .generate import add_generator_options, run_generator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "matrix",
        help="simulate the society an answer touches, then revise it (MATRIX)",
        description=(
            "Example: selfalign matrix --model hf:Qwen/Qwen2.5-7B-Instruct --prompts harmful.jsonl "
            "--out runs/m1 --roles 5 --steps 5; then selfalign export runs/m1 --format sft|preference|simulation"
        ),
    )
    add_generator_options(p)
    add_matrix_options(p)
    p.add_argument(
        "--json-max-tokens", type=int, default=2048, help="per structured call: scene, verdicts, reactions (default 2048)"
    )
    p.add_argument("--revision-max-tokens", type=int, default=2048, help="per revised answer (default 2048)")
    p.set_defaults(func=run)


def add_matrix_options(p: argparse.ArgumentParser) -> None:
    """The simulation's size (shared with `selfalign serve --matrix`)."""
    p.add_argument("--roles", type=int, default=5, help="social roles kept in the scene (default 5)")
    p.add_argument("--steps", type=int, default=5, help="actions in the asker's plan (default 5)")
    p.add_argument("--max-events", type=int, default=None, help="bound on events (default: the whole plan)")
    p.add_argument("--memory-bound", type=int, default=8, help="memory entries before summarising (default 8)")
    p.add_argument("--reaction-depth", type=int, default=2,
                   help="2: roles react to the asker and to each other's reactions (default); 1: to the asker only")
    p.add_argument("--ego-retries", type=int, default=1, help="retries of a rejected plan step (default 1)")


#: MatrixConfig field -> the flag that sets it, for errors that name the flag.
MATRIX_FLAGS = {"num_roles": "--roles", "num_steps": "--steps"}


def matrix_config(args: argparse.Namespace, **more: object) -> MatrixConfig:
    from pydantic import ValidationError

    from selfalign.errors import UserError

    try:
        return MatrixConfig(
            num_roles=args.roles,
            num_steps=args.steps,
            max_events=args.max_events,
            memory_bound=args.memory_bound,
            reaction_depth=args.reaction_depth,
            ego_retries=args.ego_retries,
            **more,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(map(str, first["loc"]))
        flag = MATRIX_FLAGS.get(field, "--" + field.replace("_", "-"))
        raise UserError(f"{flag} {first.get('input')}: {first['msg']}") from exc


def run(args: argparse.Namespace) -> int:
    config = matrix_config(
        args,
        seed=args.seed,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        revision_max_tokens=args.revision_max_tokens,
        json_max_tokens=args.json_max_tokens,
        templates=args.templates,
    )
    prompts = Prompts(PROMPTS_DIR, config.templates)  # a bad --templates folder stops here
    return run_generator(args, "matrix", config, lambda model: partial(run_item, model=model, config=config, prompts=prompts))
