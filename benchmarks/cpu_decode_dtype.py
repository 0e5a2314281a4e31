"""Greedy decoding of SmolLM2-135M-Instruct on a CPU with transformers' own `generate`: float32
against bfloat16 weights, at batch 1 and 8 and 1 and 2 torch threads, interleaved in one run,
ratios printed. A probe of where `hf:`'s CPU decode could go (it runs float32 on a CPU today);
each run is appended to benchmarks/results/cpu_decode_dtype.json.

    python benchmarks/cpu_decode_dtype.py --model models/smollm2 --tokens 48 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "Explain in three sentences why the sky is blue.",
    "What are three ways to save water at home?",
    "Describe how a bicycle works to a ten-year-old.",
    "How should I prepare for a job interview?",
    "What is the difference between weather and climate?",
    "Give two reasons to back up your files.",
    "Summarise the plot of Romeo and Juliet.",
    "Write a short note asking a neighbour to keep the noise down.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a transformers checkpoint folder (selfalign save-model hf:smollm2 DIR)")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    models = {d: AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, d)).eval() for d in ("float32", "bfloat16")}
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False) for p in PROMPTS]
    rows: dict[tuple, list[float]] = {}
    greedy_same: dict[int, bool] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch in (1, 8):
                inputs = tok(texts[:batch], return_tensors="pt", padding=True)
                outs = {}
                for dtype, model in models.items():
                    with torch.inference_mode():
                        start = time.perf_counter()
                        out = model.generate(**inputs, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)
                        seconds = time.perf_counter() - start
                    outs[dtype] = out
                    rows.setdefault((threads, batch, dtype), []).append(batch * args.tokens / seconds)
                    print(f"threads {threads} batch {batch} {dtype:8} {batch * args.tokens / seconds:6.1f} tokens/s", flush=True)
                greedy_same[batch] = bool(torch.equal(outs["float32"][:, :24 + inputs["input_ids"].shape[1]],
                                                      outs["bfloat16"][:, :24 + inputs["input_ids"].shape[1]]))
    summary = []
    for threads in (1, 2):
        for batch in (1, 8):
            f32, bf16 = (statistics.median(rows[(threads, batch, d)]) for d in ("float32", "bfloat16"))
            summary.append({"threads": threads, "batch": batch, "float32_tokens_per_s": round(f32, 1),
                            "bfloat16_tokens_per_s": round(bf16, 1), "bfloat16_over_float32": round(bf16 / f32, 2)})
            print(summary[-1])
    record = {"command": "python benchmarks/cpu_decode_dtype.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": {"cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}, "torch": torch.__version__,
              "first_24_greedy_tokens_equal_by_batch": greedy_same, "summary": summary}
    path = Path(__file__).parent / "results" / "cpu_decode_dtype.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(runs + [record], indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
