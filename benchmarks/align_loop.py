"""Does selfalign's own loop make a real model more aligned? SmolLM2-135M-Instruct (offline)
writes alignment data with one of the project's methods, is fine-tuned on it, and the base and
tuned models are measured on held-out sets with no judge. On 2 CPU cores:

    python benchmarks/align_loop.py --method critique --out runs/align            # the best recipe (run 012)
    python benchmarks/align_loop.py --method all --out runs/align --red-team 40 --lookalikes 40

Stages, each the command a user would type (printed before it runs; rerunning resumes each):
1. `save-model hf:smollm2` writes a plain checkpoint to train from (skipped with --base DIR).
2. generate with the method on training prompts written for selfalign
   (benchmarks/data/align_train/): red-team requests and harmless look-alikes on the same
   topics. Which file a prompt came from is its label, as SELF-ALIGN's red-team type is: the
   methods treat red-team prompts as theirs to align and keep the model's own answers to the
   look-alikes (critique-revise: answered only; MATRIX, Sandbox, SELF-ALIGN: as they are).
   critique-revise draws harmlessness principles, shows its two exemplars, samples at 0.3 and
   starts each revision with the exemplars' opening (SmolLM2 repeats its critique otherwise;
   docs/alignment.md has the search that led here).
3. export and train: SFT on the method's SFT export (DPO / Stable Alignment with --trainer).
4. evaluate base and tuned on benchmarks/data/heldout/ (never used for generation or tuning):
   refusal rate on the harmful prompts, over-refusal on the look-alikes (refusal-phrase
   scorer), and preference accuracy on the held-out pairs (the `hhh` log-likelihood path),
   each with its 95% paired-bootstrap interval of tuned minus base.
5. one table; the run's command, settings, figures and seconds per stage in OUT/align.json
   (and, with --record, as the next benchmarks/results/align_loop/NNN-*.json).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TRAIN = HERE / "data" / "align_train"
HELDOUT = HERE / "data" / "heldout"
RESULTS = HERE / "results" / "align_loop"
METHODS = ("critique", "self-align", "matrix", "sandbox")
TRAINER_DATA = {"sft": "sft", "dpo": "preference", "stable": "groups", "sft-dpo": "sft"}


def selfalign(*args: object) -> None:
    command = ["selfalign", *map(str, args)]
    print("\n$ " + shlex.join(command), flush=True)
    proc = subprocess.run([sys.executable, "-m", "selfalign.cli.main", *command[1:]])
    if proc.returncode not in (0, 1):  # 1: some items failed, reported in the run
        raise SystemExit(f"selfalign {args[0]} failed with exit status {proc.returncode}")


def training_prompts(out: Path, red_team: int, lookalikes: int, size: str) -> Path:
    """The first N red-team prompts and M look-alikes, interleaved, with their `red_team` label."""
    def rows(name: str, n: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (TRAIN / name).read_text().splitlines() if line.strip()][:n]

    red, look = rows("red_team.jsonl", red_team), rows("lookalike.jsonl", lookalikes)
    mixed = [row for pair in zip(red, look) for row in pair] + red[len(look):] + look[len(red):]
    path = out / f"train_prompts-{size}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in mixed))
    return path


def generate(method: str, base: Path, prompts: Path, run: Path, args: argparse.Namespace) -> list[object]:
    """The method's generation command (its options sized so SmolLM2 finishes items)."""
    common = ["--model", f"hf:{base}", "--prompts", prompts, "--out", run, "--seed", args.seed, "--concurrency", 64, "--quiet"]
    if method == "critique":
        files = ["--exemplars", args.exemplars] if args.exemplars else []
        files += ["--principles", args.principles] if args.principles else []
        files += ["--revision-start", args.revision_start] if args.revision_start else []
        return ["critique-revise", *common, "--max-tokens", args.max_tokens, "--temperature", args.temperature, *files]
    if method == "self-align":  # principle-driven answers; engraving = training on them without the prompt
        files = ["--exemplars", args.exemplars] if args.exemplars else []
        # SmolLM2 answers with its thoughts again without the n-gram penalties (docs/self_align.md)
        return ["principles", *common, "--max-tokens", args.principles_max_tokens, "--ngram-penalties", "3:4,4:8", *files]
    if method == "matrix":
        return ["matrix", *common, "--roles", 2, "--steps", 2, "--max-tokens", args.max_tokens,
                "--revision-max-tokens", args.max_tokens, "--json-max-tokens", 400]
    return ["sandbox", *common, "--grid", 2, "--rounds", 1, "--raters", 2, "--radius", 1.5,
            "--max-tokens", args.max_tokens, "--revision-max-tokens", args.max_tokens, "--judge-max-tokens", 160]


def items_done(run: Path) -> dict[str, int]:
    summary = json.loads((run / "summary.json").read_text())
    return {k: summary["items"][k] for k in ("done", "failed")}


def figures(results: dict[str, Any], tuned_spec: str) -> dict[str, dict[str, Any]]:
    """{figure: {base, base_ci, tuned, tuned_ci, diff, diff_ci, n}} from an eval's results.json."""
    wanted = {("prompts", "refusal_rate"): "refusal_harmful", ("prompts", "over_refusal"): "over_refusal_lookalike",
              ("hhh", "acc"): "preference_accuracy"}
    out: dict[str, dict[str, Any]] = {}
    for f in results["figures"]:
        name = wanted.get((f["bench"], f["metric"]))
        if name is None or f["category"] is not None:
            continue
        row = out.setdefault(name, {})
        if f["kind"] == "difference" and f["model"] == tuned_spec:
            row.update(diff=f["value"], diff_ci=f["ci"], n=f["n"])
        elif f["kind"] == "mean":
            key = "tuned" if f["model"] == tuned_spec else "base"
            row.update({key: f["value"], f"{key}_ci": f["ci"]})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    def cell(fig: dict[str, Any] | None, key: str) -> str:
        if not fig or fig.get(key) is None:
            return "n/a"
        low, high = fig.get(f"{key}_ci") or (None, None)
        sign = "+" if key == "diff" else ""
        return f"{fig[key]:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]" if low is not None else f"{fig[key]:.3f}"

    lines = ["| method | rows trained on | items done | figure | base | tuned | tuned - base (95% paired bootstrap) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        done = f"{r['items']['done']}/{r['items']['done'] + r['items']['failed']}"
        for name in ("refusal_harmful", "over_refusal_lookalike", "preference_accuracy"):
            fig = r["figures"].get(name)
            lines.append(f"| {r['method']} | {r['rows']} | {done} | {name} | {cell(fig, 'base')} | {cell(fig, 'tuned')} | {cell(fig, 'diff')} |")
    lines.append("")
    lines.append("| method | " + " | ".join(f"{s} (s)" for s in ("save-model", "generate", "export", "train", "eval")) + " | total (s) |")
    lines.append("| --- " * 7 + "|")
    for r in rows:
        s = r["seconds"]
        lines.append(f"| {r['method']} | " + " | ".join(f"{s.get(k, 0):.0f}" for k in ("save-model", "generate", "export", "train", "eval"))
                     + f" | {sum(s.values()):.0f} |")
    return "\n".join(lines)


def run_method(method: str, base: Path, out: Path, args: argparse.Namespace, seconds: dict[str, float]) -> dict[str, Any]:
    def step(name: str, *command: object) -> None:
        start = time.perf_counter()
        selfalign(*command)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    size = f"r{args.red_team}-l{args.lookalikes}"  # runs of other sizes and recipes sit beside each other
    prompts = training_prompts(out, args.red_team, args.lookalikes, size)
    run = out / f"generate-{size}"
    step("generate", *generate(method, base, prompts, run, args))
    data = out / f"{TRAINER_DATA[args.trainer]}-{size}.jsonl"
    step("export", "export", run, "--format", TRAINER_DATA[args.trainer], "--to", data)
    rows = sum(1 for line in data.read_text().splitlines() if line.strip())
    if rows == 0:  # nothing to train on: the row says so instead of stopping the other methods
        print(f"\n{method}: no {TRAINER_DATA[args.trainer]} rows to train on; see `selfalign export {run} --failures`")
        return {"method": method, "rows": 0, "items": items_done(run), "figures": {}, "seconds": dict(seconds), "out": str(out)}
    first = "sft" if args.trainer == "sft-dpo" else args.trainer
    tuned = out / f"tuned-{size}-{first}-e{args.epochs:g}-lr{args.lr:g}{f'-lora{args.lora_r}' if args.lora else ''}"
    lora = ["--lora", "--lora-r", args.lora_r, "--lora-alpha", 2 * args.lora_r] if args.lora else []
    common = ["--batch-size", 8, "--max-length", args.max_length, "--seed", args.seed, "--logging-steps", 5, *lora]
    step("train", "train", "--method", first, "--model", base, "--data", data, "--out", tuned,
         "--epochs", args.epochs, "--lr", args.lr, *common)
    if args.trainer == "sft-dpo":  # then DPO from the SFT model, on the method's preference pairs
        pairs = out / f"preference-{size}.jsonl"
        step("export", "export", run, "--format", "preference", "--to", pairs)
        tuned_sft, tuned = tuned, Path(f"{tuned}-dpo-e{args.dpo_epochs:g}-lr{args.dpo_lr:g}")
        step("train", "train", "--method", "dpo", "--model", tuned_sft, "--data", pairs, "--out", tuned,
             "--epochs", args.dpo_epochs, "--lr", args.dpo_lr, "--beta", args.beta, *common)
    eval_dir = Path(args.eval_dir) if args.eval_dir else out / "eval"
    step("eval", "eval", "--model", f"hf:{base}", "--model", f"hf:{tuned}", "--bench", "prompts,hhh",
         "--data", f"prompts={HELDOUT / 'prompts.jsonl'}", "--data", f"hhh={HELDOUT / 'preference_pairs.jsonl'}",
         "--max-tokens", args.eval_max_tokens, "--out", eval_dir, "--seed", args.seed, "--quiet",
         "--concurrency", 128, "--max-calls", 128,  # short answers: a wide batch uses the CPU best
         *(["--limit", args.eval_limit] if args.eval_limit else []),
         *(["--judge", args.judge] if args.judge else []))
    results = json.loads((eval_dir / "results.json").read_text())
    return {"method": method, "rows": rows, "items": items_done(run), "figures": figures(results, f"hf:{tuned}"),
            "seconds": dict(seconds), "out": str(out)}


def record(entry: dict[str, Any], tag: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[:3]) for p in RESULTS.glob("[0-9][0-9][0-9]-*.json")), default=0)
    path = RESULTS / f"{number:03d}-{entry['method']}-{tag}.json"
    path.write_text(json.dumps(entry, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=[*METHODS, "all"], default="critique")
    parser.add_argument("--out", default="runs/align")
    parser.add_argument("--base", default=None, help="a Hugging Face folder of SmolLM2 to start from (default: save-model hf:smollm2)")
    parser.add_argument("--red-team", type=int, default=16, help="red-team training prompts (of 130; the best recipe: 16)")
    parser.add_argument("--lookalikes", type=int, default=130, help="look-alike training prompts (of 130)")
    parser.add_argument("--exemplars", default=None, help="critique and self-align: the method's exemplars file (default: shipped)")
    parser.add_argument("--principles", default=str(TRAIN / "principles-harmless.jsonl"),
                        help="critique: the principles drawn per red-team prompt (default: the harmlessness ones, as the paper's)")
    parser.add_argument("--revision-start", default="I'm sorry, but I can't help with that.",
                        help="critique: the opening every revision is continued from ('' for none)")
    parser.add_argument("--temperature", type=float, default=0.3, help="critique: sampling temperature of every call")
    parser.add_argument("--max-tokens", type=int, default=64, help="per generated answer, critique and revision")
    parser.add_argument("--principles-max-tokens", type=int, default=200, help="self-align: thoughts and answer together")
    parser.add_argument("--trainer", choices=list(TRAINER_DATA), default="sft",
                        help="sft-dpo: SFT, then DPO from the SFT model on the preference export")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--dpo-epochs", type=float, default=1, help="sft-dpo: the DPO pass's epochs")
    parser.add_argument("--dpo-lr", type=float, default=1e-5, help="sft-dpo: the DPO pass's learning rate")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO beta")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lora", action="store_true", help="LoRA adapters instead of full fine-tuning")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--eval-max-tokens", type=int, default=32, help="held-out answers' tokens (refusals show early)")
    parser.add_argument("--eval-dir", default=None, help="evaluation folder (default OUT/eval; share one to answer the base once)")
    parser.add_argument("--eval-limit", type=int, default=None, help="only the first N held-out prompts and pairs (a smoke test)")
    parser.add_argument("--judge", default=None, help="an extra LLM-judge column (a model spec); the figures above need none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", default=None, metavar="TAG", help="also write benchmarks/results/align_loop/NNN-METHOD-TAG.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    base = Path(args.base) if args.base else out / "base"
    if not (base / "config.json").is_file():
        start = time.perf_counter()
        selfalign("save-model", "hf:smollm2", base)
        seconds["save-model"] = time.perf_counter() - start
    rows = []
    for method in METHODS if args.method == "all" else (args.method,):
        entry = run_method(method, base, out / method if args.method == "all" else out, args, dict(seconds))
        entry["command"] = shlex.join(["python", "benchmarks/align_loop.py", *sys.argv[1:]])
        entry["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "record")}
        rows.append(entry)
        (Path(entry["out"]) / "align.json").write_text(json.dumps(entry, indent=1) + "\n")
        if args.record:
            print(f"recorded {record(entry, args.record)}")
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
