"""Training throughput of `selfalign train`: SFT vs Stable Alignment vs DPO on the same data and
model, and batched Stable Alignment vs the reference way (one group per optimiser step).

    python benchmarks/train_bench.py                                   # CPU, tiny random model
    python benchmarks/train_bench.py --config-size small --threads 1   # CPU, 4-layer hidden-256 model
    python benchmarks/train_bench.py --config-size qwen2-0.5b --device cuda --steps 30 --batch-size 8
    python benchmarks/train_bench.py --config-size qwen2-0.5b --device cuda --methods sft stable --cudnn-attention

Training runs with cuDNN's attention off, as `selfalign train` runs it (it builds a graph for
every new padded length; llm/checkpoints.attention_without_cudnn); `--cudnn-attention` gives
torch's default backends instead, to compare.

Every method runs in its own subprocess (so that peak memory is its own) through the same code as
`selfalign train`: TRL's SFTTrainer / DPOTrainer and selfalign's StableAlignmentTrainer. The data
is one synthetic file of rated groups (K responses per prompt): SFT trains on prompt + best
response, DPO on best vs worst, Stable Alignment on all K responses of each group.

Tokens are the non-padding tokens of the sequences the policy trains on (the Trainer's
`num_input_tokens_seen`); DPO's reference-model forward pass costs time but adds no tokens. The
first `--warmup` steps are not timed. Peak memory: torch.cuda.max_memory_allocated on GPU; peak
RSS of the process (resource.getrusage) on CPU, with the RSS after loading the model for scale.

The reference way is the same StableAlignmentTrainer with one group per step (the reference
code's collator kept a single group per batch), given as many groups in total as the batched run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # name: Qwen2Config keyword arguments (random weights; the tokenizer is selfalign's tiny BPE)
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=None),
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4, vocab_size=None),
    # Qwen2-0.5B's architecture (about 494M parameters with its 151,936-token vocabulary)
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936),
}
WORDS = ("the people in the city help each other and share what they know about safety health food "
         "school work family rules law neighbours friends kindness honesty money time care").split()


def build_model(out: Path, size: str) -> Path:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from selfalign.llm.tiny import build_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    kw = dict(SIZES[size])
    kw["vocab_size"] = kw["vocab_size"] or len(tok)
    config = Qwen2Config(**kw, max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_data(path: Path, groups: int, k: int, prompt_words: int, response_words: int) -> Path:
    rng = random.Random(0)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    with path.open("w") as fh:
        for _ in range(groups):
            ratings = [round(rng.uniform(1, 7), 1) for _ in range(k)]
            responses = [text(rng.randint(response_words // 2, response_words)) for _ in range(k)]
            fh.write(json.dumps({"prompt": text(prompt_words), "responses": responses, "ratings": ratings}) + "\n")
    return path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> None:
    """Run one method and print one JSON line of measurements."""
    import torch
    from transformers import TrainerCallback

    from selfalign.llm.checkpoints import attention_without_cudnn
    from selfalign.train.config import TrainConfig
    from selfalign.train.data import load_records
    from selfalign.train.modeling import load_model, load_tokenizer
    from selfalign.train.run import build_trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    method = "stable" if args.only == "reference" else args.only
    batch = 1 if args.only == "reference" else args.batch_size
    steps = args.steps * args.batch_size if args.only == "reference" else args.steps
    warmup = args.warmup * args.batch_size if args.only == "reference" else args.warmup
    cfg = TrainConfig(method=method, model=args.model, data=[args.data], out=args.out, batch_size=batch,
                      max_steps=steps + warmup, max_length=args.max_length, lr=2e-5, warmup_ratio=0.0,
                      save_steps=10**9, logging_steps=10**9, bf16=args.bf16, max_responses=args.k,
                      gradient_checkpointing=args.gradient_checkpointing,
                      group_by_length=args.group_by_length and args.only != "reference")
    tok = load_tokenizer(cfg)
    model = load_model(cfg)
    rss_loaded = rss_mb()
    trainer = build_trainer(cfg, model, tok, load_records(cfg.data))
    on_gpu = torch.cuda.is_available()
    marks: dict[str, tuple[float, int]] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):  # noqa: ANN001
            if on_gpu:
                torch.cuda.synchronize()
            if state.global_step == warmup:
                marks["start"] = (time.perf_counter(), state.num_input_tokens_seen)
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats()
            marks["end"] = (time.perf_counter(), state.num_input_tokens_seen)

    trainer.add_callback(Clock())
    # As `selfalign train` runs it (train.run), unless asked for torch's default attention.
    with contextlib.nullcontext() if args.cudnn_attention else attention_without_cudnn():
        trainer.train()
    t0, n0 = marks.get("start", (0.0, 0))
    t1, n1 = marks["end"]
    print(json.dumps({
        "method": args.only, "steps": steps, "groups_per_step": batch,
        "tokens": n1 - n0, "seconds": t1 - t0,
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else rss_mb(),
        "loaded_mb": None if on_gpu else rss_loaded,
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder to train (default: build a random one of --config-size)")
    p.add_argument("--config-size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--steps", type=int, default=8, help="timed optimiser steps (reference: x batch size)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=8, help="groups (stable) / examples (sft, dpo) per step")
    p.add_argument("--k", type=int, default=3, help="responses per group")
    p.add_argument("--groups", type=int, default=64)
    p.add_argument("--prompt-words", type=int, default=24)
    p.add_argument("--response-words", type=int, default=96)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--group-by-length", action="store_true", help="length-grouped batches (not for reference)")
    p.add_argument("--cudnn-attention", action="store_true",
                   help="torch's default attention backends (cuDNN's on recent GPUs), not selfalign train's")
    p.add_argument("--methods", nargs="+", default=["sft", "stable", "dpo", "reference"])
    p.add_argument("--only", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        worker(args)
        return

    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    model = args.model or str(build_model(work / "model", args.config_size))
    data = build_data(work / "groups.jsonl", args.groups, args.k, args.prompt_words, args.response_words)
    results = {}
    for method in args.methods:
        cmd = [sys.executable, __file__, "--only", method, "--model", model, "--data", str(data),
               "--out", str(work / f"out-{method}"), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(args.batch_size), "--k", str(args.k), "--max-length", str(args.max_length),
               "--threads", str(args.threads)]
        if args.bf16 is not None:
            cmd.append("--bf16" if args.bf16 else "--no-bf16")
        if args.gradient_checkpointing:
            cmd.append("--gradient-checkpointing")
        if args.group_by_length:
            cmd.append("--group-by-length")
        if args.cudnn_attention:
            cmd.append("--cudnn-attention")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith('{"method"')]
        if proc.returncode != 0 or not line:
            sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
        results[method] = json.loads(line[-1])

    first = next(iter(results.values()))
    print(f"device: {first['device']}  model: {args.model or args.config_size}  batch: {args.batch_size}  "
          f"K: {args.k}  group-by-length: {args.group_by_length}  cuDNN attention: {args.cudnn_attention}  timed steps: {args.steps} (+{args.warmup} warm-up)  threads: {args.threads or 'default'}")
    print(f"{'method':<11}{'groups/step':>12}{'tokens':>9}{'seconds':>9}{'tokens/s':>10}{'ms/1k tok':>11}{'peak MB':>9}")
    for r in results.values():
        tps = r["tokens"] / r["seconds"]
        print(f"{r['method']:<11}{r['groups_per_step']:>12}{r['tokens']:>9}{r['seconds']:>9.2f}{tps:>10.0f}"
              f"{1000 * 1000 / tps:>11.1f}{r['peak_mb']:>9.0f}")
    if first["loaded_mb"] is not None:
        print("(CPU peak MB is the process's peak RSS; after loading the model it was "
              + ", ".join(f"{r['method']} {r['loaded_mb']:.0f}" for r in results.values()) + ")")

    def per_token(m: str) -> float:
        return results[m]["seconds"] / results[m]["tokens"]

    if "stable" in results and "sft" in results:
        print(f"stable vs sft, time per token: {per_token('stable') / per_token('sft'):.2f}x")
    if "stable" in results and "dpo" in results:
        print(f"stable vs dpo, time per token: {per_token('stable') / per_token('dpo'):.2f}x")
    if "stable" in results and "reference" in results:
        print(f"batched stable vs one group per step: {per_token('reference') / per_token('stable'):.2f}x faster")


if __name__ == "__main__":
    main()
