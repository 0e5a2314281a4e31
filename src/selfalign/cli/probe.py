"""`selfalign probe`: the refusal direction inside a model (Arditi et al. 2024), or two models.

    selfalign probe --model hf:base --model hf:ckpt --harmful h.jsonl --harmless b.jsonl --out runs/p1
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="read a model's activations: the refusal direction per layer, its separation, ablating and adding it",
        description="Example: selfalign probe --model hf:base --model hf:ckpt --harmful h.jsonl --harmless b.jsonl --out runs/p1",
    )
    p.add_argument("--model", action="append", required=True, help="an hf: model; give two (base, then tuned) to compare them")
    p.add_argument("--harmful", default=None, help="harmful prompts (.jsonl/.csv/.txt/...; default: the shipped 60)")
    p.add_argument("--harmless", default=None, help="harmless prompts (default: the shipped 60, the same wordings)")
    p.add_argument("--out", required=True, help="run folder; rerunning resumes it")
    p.add_argument("--probe", default="refusal-direction", help="which probe (a registered or installed one)")
    p.add_argument("--layer", type=int, default=None, help="the layer whose direction is ablated and added (default: the best-separating one)")
    p.add_argument("--held-out", type=float, default=0.5, help="share of each prompt set kept out of the direction to measure it")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens per answer when measuring refusal")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass")
    p.add_argument("--refusal-phrases", default=None, help="a text file of refusal phrases, one a line (replaces the shipped list)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the bootstrap")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from selfalign.errors import UserError
    from selfalign.evaluate.probes import ProbeConfig, ProbeOptions, run_probe

    try:
        options = ProbeOptions(harmful=args.harmful, harmless=args.harmless, held_out=args.held_out, layer=args.layer,
                               max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                               refusal_phrases_file=args.refusal_phrases, seed=args.seed, resamples=args.resamples)
        config = ProbeConfig(models=args.model, probe=args.probe, out=args.out, options=options, device=args.device,
                             progress=not args.quiet)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][-1])
        flag = "--model (at most two)" if field == "models" else "--" + field.replace("_", "-")
        raise UserError(f"{flag}: {err['msg']}") from exc
    results = run_probe(config)
    print((__import__("pathlib").Path(args.out) / "results.md").read_text("utf-8"))
    print(f"wrote {args.out}/results.json and {args.out}/results.md")
    return 1 if results["failed_items"] else 0
