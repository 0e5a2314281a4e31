"""Decode steps on a CUDA GPU with and without cuDNN's attention, on new and on seen shapes.

    python benchmarks/decode_attention.py                          # Qwen2-0.5B's shape, random weights
    python benchmarks/decode_attention.py --model PATH_OR_ID

The `hf:` engine's decode loop (llm/engine.py) meets a new attention shape, batch size x KV
length, at nearly every step. torch prefers cuDNN's scaled-dot-product attention on recent GPUs,
and cuDNN builds a graph for each shape it has not seen. This script runs the same loop of bare
forward steps (a KV cache, one padded row so attention gets a mask, greedy argmax read back as
the engine does) twice over the same shapes: "new" is the first pass, "seen" the second. It does
so with torch's default backends, then with cuDNN's turned off (what the engine uses), and prints
milliseconds per step and the ratio. Each setting starts at KV lengths the other never used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from selfalign.llm.batch import cache_name

sys.path.insert(0, str(Path(__file__).parent))
from train_bench import SIZES, build_model  # noqa: E402


def steps_ms(model, batch: int, prompt: int, steps: int) -> float:
    from transformers import DynamicCache

    cache = cache_name(model)  # `past_key_values` before transformers renamed it
    ids = torch.randint(0, 500, (batch, prompt), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # one left-padded row, as in a mixed batch
    out = model(input_ids=ids, attention_mask=mask, use_cache=True, **{cache: DynamicCache(config=model.config)})
    last = out.logits[:, -1].argmax(-1)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=-1)
        out = model(input_ids=last[:, None], attention_mask=mask, use_cache=True, **{cache: out[cache]})
        last = out.logits[:, -1].float().argmax(-1)
        last.tolist()  # the engine reads every step's tokens back
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a model folder or hub id (default: random weights of --config-size)")
    p.add_argument("--config-size", choices=sorted(SIZES), default="qwen2-0.5b")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--prompt", type=int, default=100, help="prompt tokens of the first setting's first batch")
    p.add_argument("--steps", type=int, default=48)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("decode_attention.py measures cuDNN's attention: it needs a CUDA GPU")
    from transformers import AutoModelForCausalLM

    path = args.model or build_model(Path(tempfile.mkdtemp(prefix="selfalign-bench-")), args.config_size)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, model {args.model or args.config_size} (bf16), "
          f"{args.steps} decode steps per pass")
    with torch.inference_mode():
        steps_ms(model, 2, 16, 4)  # first-call costs
        offset = args.prompt
        results = {}
        for label, cudnn in (("default backends", True), ("cuDNN attention off", False)):
            torch.backends.cuda.enable_cudnn_sdp(cudnn)
            for batch in args.batches:
                offset += args.steps + 1 + batch  # lengths no earlier pass used
                new, seen = steps_ms(model, batch, offset, args.steps), steps_ms(model, batch, offset, args.steps)
                results[cudnn, batch] = new
                print(f"{label:20} batch {batch:3}: new shapes {new:6.1f} ms/step, seen shapes {seen:6.1f} ms/step")
        torch.backends.cuda.enable_cudnn_sdp(True)
    for batch in args.batches:
        print(f"batch {batch:3}: new shapes, cuDNN off vs default: {results[True, batch] / results[False, batch]:.2f}x faster")


if __name__ == "__main__":
    main()
