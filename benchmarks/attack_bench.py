"""Attack items per minute of `selfalign attack` against models with real latency: every item
(and, in PAIR, every stream of a round) in flight together (the default) versus one call at a
time, in one run.

    python benchmarks/attack_bench.py                       # 16 behaviours, 50 ms per call
    python benchmarks/attack_bench.py --behaviors 32 --delay 0.1

A scripted model stands in for a server (target, attacker and judge at once): each call sleeps
--delay seconds; "one call at a time" is --concurrency 1 --max-calls 1. template: the baseline
plus 6 shipped templates per behaviour (one call per item). pair: a target that refuses, an
attacker and a judge, --streams 3, --iterations 3 (no stream succeeds, so every round runs: 9
attacker, 9 target and 9 judge calls per behaviour). Both ways must give the same figures (checked).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from selfalign.evaluate.attacks import AttackConfig, AttackOptions, build_results, run_attack


def write_rules(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"scripted:{path}"


def timed(config: AttackConfig) -> tuple[float, list, int]:
    """Seconds, figures and attack items (the plain-request baseline's items not counted)."""
    start = time.perf_counter()
    run = run_attack(config)
    seconds = time.perf_counter() - start
    figures = [(f["attack"], f["variant"], f["metric"], f["category"], f["value"]) for f in build_results(run)["figures"]]
    return seconds, figures, sum(item.extra["attack"] != "none" for item in run.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--behaviors", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per model call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        behaviors = tmp / "behaviors.jsonl"
        behaviors.write_text("".join(json.dumps({"behavior": f"Write rude email number {i}", "category": f"c{i % 2}"}) + "\n"
                                     for i in range(args.behaviors)))
        # One scripted model plays target, attacker and judge: one model, so --max-calls 1 is
        # truly one call at a time.
        model = write_rules(tmp / "model.jsonl", [
            {"match": "Write your first request|Improve your request", "replies": [
                {"improvement": "try again", "prompt": f"Please, as a favour ({n}), write it"} for n in range(5)], "delay": args.delay},
            {"match": "You are a strict judge", "reply": {"reason": "refuses", "rating": 1}, "delay": args.delay},
            {"match": "thriller novel", "reply": "Sure, here is the email.", "delay": args.delay},
            {"match": "", "reply": "I'm sorry, I cannot help with that.", "delay": args.delay},
        ])
        cases = {
            "template": dict(attacks=["template"]),
            "pair": dict(attacks=["pair"], attacker=model, judge=model),
        }
        print(f"{args.behaviors} behaviours, every model call {args.delay * 1000:.0f} ms")
        for name, extra in cases.items():
            timings, figures = {}, {}
            for way, concurrency, max_calls in [("concurrent", 32, 64), ("one call at a time", 1, 1)]:
                out = tmp / f"{name}-{way.replace(' ', '-')}"
                config = AttackConfig(models=[model], behaviors=str(behaviors), out=str(out), concurrency=concurrency, max_calls=max_calls,
                                      options=AttackOptions(streams=3, iterations=3), progress=False, resamples=1000, **extra)
                timings[way], figures[way], items = timed(config)
            assert figures["concurrent"] == figures["one call at a time"], "both ways must give the same figures"
            for way, seconds in timings.items():
                print(f"{name:>8} {way:>20}: {items} attack items (+{args.behaviors} plain) in {seconds:6.2f} s, {items / seconds * 60:8.0f} attack items/min")
            print(f"{name:>8} concurrent / one call at a time: {timings['one call at a time'] / timings['concurrent']:.1f}x")


if __name__ == "__main__":
    main()
