"""Which prompt format keeps SELF-ALIGN stage 2's answers on a chat model: chat or raw text?

    python benchmarks/principles_format.py --model hf:smollm2 --out /tmp/pf --record benchmarks/results/principles_format.json

The same questions (red-team seed questions and self-instruct seed tasks shipped with the
method, `--questions` of each) go through `selfalign principles` twice: as one user message in
the model's chat template (--no-raw) and as raw text continued after "Assistant (internal
thoughts):" (--raw), as the paper prompts a base model. For each it prints the share of answers
kept and the drops by reason; `principles` chooses its default for chat models by this figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from selfalign.methods.principles import load_red_team_types, load_seed_tasks


def questions(n: int) -> list[str]:
    """`n` red-team seed questions (one a type, in order) and `n` seed tasks."""
    red_team = [kind.seeds[0].question for kind in load_red_team_types(None)][:n]
    tasks = load_seed_tasks(None)[:n]
    return red_team + [t.instruction + (f"\n\n{t.input}" if t.input else "") for t in tasks]


def run(model: str, prompts: Path, out: Path, raw: bool, max_tokens: int) -> dict:
    start = time.monotonic()
    argv = ["principles", "--model", model, "--prompts", prompts, "--out", out, "--max-tokens", max_tokens,
            "--raw" if raw else "--no-raw", "--quiet"]
    proc = subprocess.run([sys.executable, "-m", "selfalign.cli.main", *map(str, argv)], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"principles failed ({proc.returncode}): {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    summary = json.loads((out / "summary.json").read_text())
    done = summary["items"]["done"]
    return {"format": "raw" if raw else "chat", "answers": done, "kept": summary["kept"],
            "kept_share": round(summary["kept"] / done, 3) if done else None, "dropped": summary["dropped"],
            "principles_cited": summary["principles_cited"], "seconds": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hf:smollm2")
    parser.add_argument("--out", required=True, help="a folder for the two runs")
    parser.add_argument("--questions", type=int, default=6, help="red-team questions and seed tasks, of each")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--record", default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions(args.questions)))
    results = [run(args.model, prompts, out / fmt, fmt == "raw", args.max_tokens) for fmt in ("chat", "raw")]
    for r in results:
        print(f"{r['format']:5s} kept {r['kept']}/{r['answers']} ({r['kept_share']}), dropped {r['dropped']}, {r['seconds']}s")
    if args.record:
        record = {"command": " ".join(sys.argv), "model": args.model, "max_tokens": args.max_tokens,
                  "questions": args.questions * 2, "results": results}
        Path(args.record).write_text(json.dumps(record, indent=2) + "\n")
        print(f"recorded: {args.record}")


if __name__ == "__main__":
    main()
