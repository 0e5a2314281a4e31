"""`selfalign eval`: compare models on benchmarks with judges and refusal detection.

    selfalign eval --model hf:base --model hf:ckpt --bench advbench,jbb-benign \\
        --data advbench=harmful_behaviors.csv --data jbb-benign=benign-behaviors.csv \\
        --judge openai:judge@http://localhost:8000/v1 --out runs/e1
"""

from __future__ import annotations

import argparse

from selfalign.evaluate import BENCHMARKS, EvalConfig, Generation, build_results, render_table, run_eval, write_results
from selfalign.errors import UserError
from selfalign.evaluate.benchmarks import parse_data_options
from selfalign.evaluate.scorers import JudgeSettings, build_scorers
from selfalign.evaluate.validate import correct_results, render_validation, validate_judge, write_validation

from .generate import add_ray_options, ray_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="judge and benchmark models: refusal, harm, rubric grades, pairwise win rates, with 95%% intervals",
        description=(
            "Example: selfalign eval --model hf:base --model hf:tuned --bench prompts --data prompts=heldout.jsonl "
            "--judge hf:judge --out runs/e1. The first --model is the baseline."
        ),
    )
    p.add_argument("--model", action="append", default=[], help="a model spec; repeat to compare (the first is the baseline)")
    p.add_argument("--bench", default=None, help=f"comma-separated benchmarks: {', '.join(BENCHMARKS)}")
    p.add_argument("--data", action="append", default=[], metavar="NAME=FILE", help="a benchmark's file (or hub dataset name)")
    p.add_argument("--judge", default=None, help="the judge model spec (needed by harm, strongreject, rubric:*, pairwise)")
    p.add_argument(
        "--scorers", "--scorer", default=None,
        help="comma-separated: refusal, harm, pairwise, rubric:NAME, or an anchor's judge verbatim: harmbench, jbb, "
        "jbb-refusal, strongreject, strongreject-finetuned, prefixes, mt-bench, mt-bench-pair (docs/judges.md) "
        "(default: refusal; with --judge also harm, rubric:harmlessness, rubric:helpfulness, and pairwise for 2+ models)",
    )
    p.add_argument("--pairs", choices=["baseline", "all"], default="baseline", help="pairwise: each model vs the first, or every pair")
    p.add_argument("--out", required=True, help="evaluation folder; rerunning resumes and reuses answers")
    p.add_argument("--temperature", type=float, default=0.0, help="answers' temperature (default 0: greedy)")
    p.add_argument("--max-tokens", type=int, default=512, help="answers' token budget (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampled answers and of the bootstrap")
    p.add_argument("--judge-max-tokens", type=int, default=512, help="tokens per judge verdict")
    p.add_argument("--rubric", default=None, help="JSONL of {name, description, scale}: rubrics added to the shipped ones")
    p.add_argument("--refusal-phrases", default=None, help="a text file of refusal phrases, one a line (replaces the shipped list)")
    p.add_argument("--templates", default=None, help="folder of .j2 judge prompts replacing the shipped ones")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts of each benchmark")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight per run (default 32)")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight per model (default 64)")
    p.add_argument("--device", default=None, help="hf: models and judges: cpu, cuda, cuda:1 ...")
    p.add_argument("--epochs", type=int, default=1, help="answers sampled per prompt, each seeded apart (default 1)")
    p.add_argument("--reducer", default="mean", help="how a prompt's samples become one value: mean, max, majority, pass@K (default mean)")
    p.add_argument("--reference", default=None, help="mt-bench: FastChat's reference answers (reference_answer/gpt-4.jsonl)")
    p.add_argument("--validate-judge", default=None, metavar="FILE",
                   help="only score human-labelled rows (prompt, answer, label) with --scorers and --judge: accuracy, kappa, TPR, TNR")
    p.add_argument("--correct-judge", default=None, metavar="FILE",
                   help="labelled rows: each yes/no rate is shown beside the rate corrected for the judge's errors (Rogan-Gladen)")
    p.add_argument("--toxicity-classifier", default=None, help="realtoxicityprompts, bold: hf:PATH (a sequence-classification checkpoint) or judge")
    p.add_argument("--toxicity-label", default=None, help="the classifier's toxic label (default: the one named toxic, toxicity, hate, ...)")
    p.add_argument("--sentiment-classifier", default=None, help="bold: hf:PATH, a sentiment figure per group")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    add_ray_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.validate_judge:
        return validate(args)
    if not args.model or not args.bench:
        raise UserError("selfalign eval needs --model SPEC and --bench NAMES (or --validate-judge FILE with --scorers and --judge)")
    config = EvalConfig(
        models=args.model,
        benches=[b.strip() for b in args.bench.split(",") if b.strip()],
        data=parse_data_options(args.data),
        out=args.out,
        judge=args.judge,
        scorers=[s.strip() for s in args.scorers.split(",") if s.strip()] if args.scorers else None,
        pairs=args.pairs,
        generation=Generation(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed),
        judge_max_tokens=args.judge_max_tokens,
        rubric_file=args.rubric,
        refusal_phrases_file=args.refusal_phrases,
        templates=args.templates,
        limit=args.limit,
        concurrency=args.concurrency,
        max_calls=args.max_calls,
        device=args.device,
        ray=ray_options(args),
        epochs=args.epochs,
        reducer=args.reducer,
        reference=args.reference,
        toxicity_classifier=args.toxicity_classifier,
        toxicity_label=args.toxicity_label,
        sentiment_classifier=args.sentiment_classifier,
        resamples=args.resamples,
        bootstrap_seed=args.seed,
        progress=not args.quiet,
    )
    evaluation = run_eval(config)
    results = build_results(evaluation)
    if args.correct_judge:
        correct_results(evaluation, results, args.correct_judge)
    write_results(results, args.out)
    print(render_table(results))
    print(f"wrote {args.out}/results.json and {args.out}/results.md")
    return 0


def validate(args: argparse.Namespace) -> int:
    if not args.scorers:
        raise UserError("--validate-judge: name the scorers to validate with --scorers (e.g. harmbench, or refusal)")
    settings = JudgeSettings(0.0, args.judge_max_tokens, args.seed)
    scorers = build_scorers([s.strip() for s in args.scorers.split(",") if s.strip()], refusal_phrases_file=args.refusal_phrases,
                            templates=args.templates, settings=settings, judge=args.judge)
    judged = [s.name for s in scorers if s.needs_judge]
    if judged and not args.judge:
        raise UserError(f"--scorers {','.join(judged)} need a judge: add --judge SPEC")
    options = {"device": args.device} if args.device and (args.judge or "").startswith("hf:") else {}
    report, _ = validate_judge(scorers, args.validate_judge, args.judge, args.out, max_calls=args.max_calls,
                               concurrency=args.concurrency, provider_options=options, seed=args.seed)
    path = write_validation(report, args.out)
    print(render_validation(report))
    print(f"wrote {path}")
    return 0
