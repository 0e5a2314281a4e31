"""Seconds for the refusal-direction probe's activations (no generation) of 200 prompts with
SmolLM2-135M-Instruct on the CPU: one batched forward pass per 32 prompts, every layer's
last-token residual read by forward hooks. Writes benchmarks/results/probe_speed.json.

    python benchmarks/probe_speed.py --model /tmp/smollm2        # a folder from `selfalign save-model hf:smollm2`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib import resources
from pathlib import Path

import torch

from selfalign.evaluate.probes.hooks import encode_prompts, last_token_activations
from selfalign.llm.checkpoints import load_pretrained


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    data = resources.files("selfalign.evaluate.probes") / "data"
    lines = [line for name in ("harmful.txt", "harmless.txt") for line in (data / name).read_text().splitlines() if line]
    prompts = [[{"role": "user", "content": lines[i % len(lines)] + ("" if i < len(lines) else f" (again {i})")}] for i in range(args.prompts)]
    model, tokenizer = load_pretrained(args.model, dtype=torch.float32)
    model.eval()
    ids = encode_prompts(tokenizer, prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    acts = last_token_activations(model, ids, pad, args.batch_size)
    seconds = time.perf_counter() - start
    result = {"command": f"python benchmarks/probe_speed.py --model {args.model}", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch_threads": torch.get_num_threads(), "load_average_before": round(load_before, 1), "prompts": len(ids),
              "tokens": sum(map(len, ids)), "shape": list(acts.shape), "seconds": round(seconds, 2),
              "prompts_per_second": round(len(ids) / seconds, 1)}
    print(json.dumps(result, indent=2))  # every run is kept: on a shared machine the load says how far to trust one
    out = Path(__file__).parent / "results" / "probe_speed.json"
    previous = json.loads(out.read_text()) if out.exists() else {"runs": []}
    runs = previous["runs"] if "runs" in previous else [{**previous, "note": "before the probe computed one logit per pass"}]
    out.write_text(json.dumps({"runs": [*runs, result]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
