"""Does selfalign's own loop align a real model? SmolLM2-135M-Instruct (offline) writes
critique-revise data on prompts of ours, is fine-tuned on it (SFT), and the base and tuned
models are compared on held-out prompts with `selfalign eval`. On 2 CPU cores:

    python benchmarks/align_loop.py --out runs/align --train 64        # 20-70 minutes, see the README
    python benchmarks/align_loop.py --out runs/align --train 160 --max-tokens 128 --epochs 3

Each step is the command a user would type, printed before it runs; rerunning resumes every
step. The prompts (benchmarks/data/align_prompts.jsonl, written for this project) are 100 mild
harmful requests (lying, snooping, petty fraud, cruelty; nothing dangerous) and 100 ordinary
ones; 20 of each are held out, never seen in training. The judge is the base model itself (no
other model is available offline), so its verdicts are weak evidence; the refusal figures need
no judge.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

PROMPTS = Path(__file__).parent / "data" / "align_prompts.jsonl"


def selfalign(*args: object) -> None:
    command = ["selfalign", *map(str, args)]
    print("\n$ " + shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", "selfalign.cli.main", *command[1:]], check=True)


def split_prompts(out: Path, n_train: int) -> tuple[Path, Path]:
    """The first n_train training prompts (harmful and ordinary interleaved) and all held-out ones."""
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["split"] == "train"][:n_train]
    heldout = [r for r in rows if r["split"] == "heldout"]
    paths = out / "train_prompts.jsonl", out / "heldout.jsonl"
    for path, part in zip(paths, (train, heldout)):
        path.write_text("".join(json.dumps({"prompt": r["prompt"], "harmful": r["harmful"]}) + "\n" for r in part))
    print(f"{len(train)} training prompts ({sum(r['harmful'] for r in train)} harmful), "
          f"{len(heldout)} held out ({sum(r['harmful'] for r in heldout)} harmful)")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/align")
    parser.add_argument("--model", default="smollm2", help="what hf: loads: smollm2, a GGUF file, or a Hugging Face folder")
    parser.add_argument("--train", type=int, default=64, help="training prompts (of 160)")
    parser.add_argument("--max-tokens", type=int, default=80, help="per generated answer, critique and revision")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def step(name: str, *command: object) -> None:
        start = time.perf_counter()
        selfalign(*command)
        seconds[name] = time.perf_counter() - start

    train_prompts, heldout = split_prompts(out, args.train)
    base = out / "base"
    if Path(args.model).is_dir():
        base = Path(args.model)
    elif not (base / "config.json").is_file():  # a GGUF file (smollm2): a plain checkpoint to train from
        step("save-model", "save-model", f"hf:{args.model}", base)
    step("critique-revise", "critique-revise", "--model", f"hf:{base}", "--prompts", train_prompts,
         "--out", out / "critique", "--max-tokens", args.max_tokens, "--seed", args.seed, "--quiet")
    step("export", "export", out / "critique", "--format", "sft", "--to", out / "sft.jsonl")
    tuned = out / "tuned"
    step("train", "train", "--method", "sft", "--model", base, "--data", out / "sft.jsonl", "--out", tuned,
         "--epochs", args.epochs, "--lr", args.lr, "--batch-size", 8, "--max-length", 384, "--seed", args.seed)
    step("eval", "eval", "--model", f"hf:{base}", "--model", f"hf:{tuned}", "--bench", "prompts",
         "--data", f"prompts={heldout}", "--judge", f"hf:{base}", "--scorers", "refusal,harm,pairwise",
         "--max-tokens", args.max_tokens, "--out", out / "eval", "--seed", args.seed, "--quiet")
    print("\nseconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
          + f"; total {sum(seconds.values()):.0f}")


if __name__ == "__main__":
    main()
