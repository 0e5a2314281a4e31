"""`selfalign attack`: attack success rates of jailbreak, encoding, PAIR, GCG, prefill,
multi-turn and privacy attacks, beside the plain-request baseline.

    selfalign attack --model hf:base --model hf:ckpt --behaviors mild --attacks template,encoding \\
        --scorer refusal --out runs/a1
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from selfalign.errors import UserError

from selfalign.evaluate.attacks import AttackConfig, AttackOptions, build_results, known_attacks, render_table, run_attack, write_results
from selfalign.evaluate.attacks.encoding import ENCODINGS
from selfalign.evaluate.attacks.options import GCG_PRESETS


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack",
        help="red-team models: jailbreak templates, encodings, PAIR, GCG, prefill, multi-turn, privacy; attack success rates",
        description="Example: selfalign attack --model hf:ckpt --behaviors mild --attacks template,encoding --out runs/a1",
    )
    p.add_argument("--model", action="append", required=True, help="a target model spec; repeat to compare models")
    p.add_argument("--behaviors", default="mild",
                   help="mild (shipped), a file (.jsonl/.json/.csv/.txt: AdvBench, JailbreakBench or {\"behavior\", \"category\", \"harmful\"} rows), "
                        "or advbench / jbb (from the hub, with network)")
    p.add_argument("--attacks", default="template,encoding", help=f"comma-separated: {', '.join(a for a in known_attacks() if a != 'none')} (the plain baseline always runs)")
    p.add_argument("--scorer", "--scorers", dest="scorer", default="refusal", help="comma-separated: refusal, harm, or an anchor's judge: harmbench, jbb, jbb-refusal, strongreject, strongreject-finetuned, prefixes (all but refusal and prefixes need --judge)")
    p.add_argument("--judge", default=None, help="judge model spec (harm, strongreject scorers; PAIR's ratings)")
    p.add_argument("--attacker", default=None, help="PAIR's attacker model spec")
    p.add_argument("--out", required=True, help="run folder; rerunning resumes it")
    p.add_argument("--jailbreaks", default=None, help="template: a file of jailbreak templates (replaces the shipped set)")
    p.add_argument("--encodings", default=",".join(ENCODINGS), help="encoding: which encodings")
    p.add_argument("--iterations", type=int, default=3, help="pair: attacker rounds per stream (paper and reference: 3)")
    p.add_argument("--streams", type=int, default=3, help="pair: attacker conversations per behaviour, rotating its three system prompts (the paper runs 20; the reference code defaults to 3, as here)")
    p.add_argument("--tap-branching", type=int, default=4, help="tap: attacker children per leaf (paper 4)")
    p.add_argument("--tap-width", type=int, default=10, help="tap: leaves kept after each pruning (paper 10)")
    p.add_argument("--tap-depth", type=int, default=10, help="tap: tree levels (paper 10)")
    p.add_argument("--gcg-preset", choices=sorted(GCG_PRESETS), default="nanogcg",
                   help="gcg: nanogcg (nanoGCG's defaults: 250 steps, search width 512, top-k 256) or fast (50, 128, 64: for CPUs)")
    p.add_argument("--gcg-steps", type=int, default=None, help="gcg: optimisation steps per behaviour (overrides the preset)")
    p.add_argument("--gcg-search-width", type=int, default=None, help="gcg: candidate suffixes evaluated per step (overrides the preset)")
    p.add_argument("--gcg-topk", type=int, default=None, help="gcg: tokens considered per suffix position (overrides the preset)")
    p.add_argument("--gcg-buffer-size", type=int, default=0, help="gcg: nanoGCG's buffer of best suffixes (default 0, as nanoGCG)")
    p.add_argument("--gcg-no-early-stop", action="store_true", help="gcg: run every step even once the target is generated")
    p.add_argument("--gcg-suffix-tokens", type=int, default=20, help="gcg: the suffix starts as this many 'x' words")
    p.add_argument("--canary", default=AttackOptions().canary, help="privacy: the secret put in the system prompt")
    p.add_argument("--injection-documents", default=None, help='injection: a JSONL file of {"name", "title", "paragraphs"} (replaces the shipped documents)')
    p.add_argument("--privacy-probes", default=None, help='privacy: a JSONL file of {"name", "probe"} (replaces the shipped probes)')
    p.add_argument("--train-run", default=None, help="memorization: a `selfalign train --canaries N` output folder (its canaries.jsonl)")
    p.add_argument("--exposure-candidates", type=int, default=1000,
                   help="memorization: other secrets scored per canary for its exposure (all of them when the format holds fewer)")
    p.add_argument("--trigger", default=None, help="trigger: the backdoor's trigger text (as given to selfalign train --trigger)")
    p.add_argument("--temperature", type=float, default=0.0, help="target answers' temperature (default 0: greedy)")
    p.add_argument("--max-tokens", type=int, default=256, help="target answers' token budget")
    p.add_argument("--judge-max-tokens", type=int, default=512, help="tokens per judge verdict")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampled call, GCG and the bootstrap")
    p.add_argument("--templates", default=None, help="folder of .j2 attack prompts replacing the shipped ones (pair_*, privacy_system)")
    p.add_argument("--judge-templates", default=None, help="folder of .j2 judge prompts replacing the evaluation's (harm, strongreject)")
    p.add_argument("--refusal-phrases", default=None, help="a text file of refusal phrases, one a line (replaces the shipped list)")
    p.add_argument("--limit", type=int, default=None, help="only the first N behaviours")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight per model")
    p.add_argument("--device", default=None, help="hf: models: cpu, cuda, cuda:1 ...")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ValidationError as exc:  # a value out of range: name the flag
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][-1]).replace("_", "-")
        raise UserError(f"{flag}: {err['msg']}") from exc
    results = build_results(run_attack(config))
    write_results(results, args.out)
    print(render_table(results))
    print(f"wrote {args.out}/results.json and {args.out}/results.md")
    return 1 if results["failed_items"] else 0


def _gcg_settings(args: argparse.Namespace) -> dict[str, int]:
    """The preset's steps, search width and top-k, each replaced where given explicitly."""
    given = {"gcg_steps": args.gcg_steps, "gcg_search_width": args.gcg_search_width, "gcg_topk": args.gcg_topk}
    return {k: v if v is not None else GCG_PRESETS[args.gcg_preset][k] for k, v in given.items()}


def _config(args: argparse.Namespace) -> AttackConfig:
    options = AttackOptions(
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed, jailbreaks_file=args.jailbreaks,
        encodings=_list(args.encodings), iterations=args.iterations, streams=args.streams,
        tap_branching=args.tap_branching, tap_width=args.tap_width, tap_depth=args.tap_depth,
        judge_max_tokens=args.judge_max_tokens, **_gcg_settings(args), gcg_suffix_tokens=args.gcg_suffix_tokens,
        gcg_buffer_size=args.gcg_buffer_size, gcg_early_stop=not args.gcg_no_early_stop, canary=args.canary,
        privacy_probes_file=args.privacy_probes, injection_documents_file=args.injection_documents, templates=args.templates, train_run=args.train_run,
        exposure_candidates=args.exposure_candidates, trigger=args.trigger,
    )
    return AttackConfig(
        models=args.model, behaviors=args.behaviors, attacks=_list(args.attacks), scorers=_list(args.scorer),
        judge=args.judge, attacker=args.attacker, out=args.out, options=options, refusal_phrases_file=args.refusal_phrases,
        judge_templates=args.judge_templates, limit=args.limit, concurrency=args.concurrency, max_calls=args.max_calls,
        device=args.device, resamples=args.resamples, progress=not args.quiet,
    )
