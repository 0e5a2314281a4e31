"""Decode steps on a CUDA GPU with and without cuDNN's attention, on new and on seen shapes; or
today's decode steps beside fixed-shape ones (compiled, CUDA graphs), on a GPU or a CPU.

    python benchmarks/decode_attention.py                          # Qwen2-0.5B's shape, random weights
    python benchmarks/decode_attention.py --model PATH_OR_ID
    python benchmarks/decode_attention.py --compile-decode graphs compile --batches 1 8 32   # a GPU
    python benchmarks/decode_attention.py --compile-decode eager compile --config-size tiny --batches 1 4 --steps 24  # a CPU

The `hf:` engine's decode loop (llm/engine.py) meets a new attention shape, batch size x KV
length, at nearly every step. torch prefers cuDNN's scaled-dot-product attention on recent GPUs,
and cuDNN builds a graph for each shape it has not seen. This script runs the same loop of bare
forward steps (a KV cache, one padded row so attention gets a mask, greedy argmax read back as
the engine does) twice over the same shapes: "new" is the first pass, "seen" the second. It does
so with torch's default backends, then with cuDNN's turned off (what the engine uses), and prints
milliseconds per step and the ratio. Each setting starts at KV lengths the other never used.

`--compile-decode MODE...` measures instead the `hf:` engine's step functions on the same rows
(prompts of four lengths, left-padded, greedy argmax read back every step): today's
(`batch.step_dynamic`, shapes that grow every step) and the fixed-shape one of each mode
(`static_decode.StaticDecoder`: "eager", "compile", "graphs"). Each mode runs the steps twice:
the first pass compiles or captures its buckets (its time is printed apart), the second is
timed. It prints milliseconds per step, the ratio to today's, and how many rows' greedy tokens
equal today's; the run is appended to benchmarks/results/compile_decode.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from selfalign.llm.batch import RunningBatch, cache_name, prefill, step_dynamic
from selfalign.llm.static_decode import open_static_decoder

sys.path.insert(0, str(Path(__file__).parent))
from train_bench import SIZES, build_model  # noqa: E402

from selfalign.llm.decode_loop import forward_mode  # noqa: E402


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


def greedy_pass(model, device, batch: int, prompt: int, steps: int, decoder=None) -> tuple[float, list[list[int]]]:
    """`steps` greedy decode steps of `batch` rows (prompts of 4 lengths around `prompt`, so
    rows are left-padded), each step's tokens read back as the engine does: seconds a step, and
    each row's tokens. `decoder`: a StaticDecoder (None: today's steps)."""
    name = cache_name(model)
    generator = torch.Generator().manual_seed(batch)
    ids = [torch.randint(1, 500, (prompt - 3 * (i % 4),), generator=generator).tolist() for i in range(batch)]
    out, mask = prefill(model, name, ids, 0, device)
    run = RunningBatch([], out[name], mask, out.logits[:, -1, :].argmax(-1))
    tokens = [[] for _ in range(batch)]
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        logits = decoder.step(run) if decoder is not None else None
        if logits is None:
            logits = step_dynamic(model, name, run)
        run.last = logits.float().argmax(-1)
        for row, token in zip(tokens, run.last.tolist(), strict=True):  # read back, as the engine does
            row.append(token)
    sync(device)
    if decoder is not None:
        decoder.release(run)
    return (time.perf_counter() - start) / steps, tokens


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare_modes(model, device, modes: list[str], batches: list[int], prompt: int, steps: int) -> dict[str, Any]:
    """Today's steps beside each mode's, batch by batch, today's pass run just before each
    mode's timed one (see the module docstring)."""
    results: dict[str, Any] = {}
    greedy_pass(model, device, 2, 16, 4)  # first-call costs
    for mode in modes:
        decoder = open_static_decoder(model, mode, cache_name(model), plain_cache=True)
        per_batch: dict[int, Any] = {}
        for batch in batches:
            start = time.perf_counter()
            greedy_pass(model, device, batch, prompt, steps, decoder)  # compiles or captures its buckets
            first = time.perf_counter() - start
            today, expected = greedy_pass(model, device, batch, prompt, steps)
            seconds, tokens = greedy_pass(model, device, batch, prompt, steps, decoder)
            if decoder is None or decoder.failed:
                reason = (decoder and decoder.failed) or "not opened, see the log line"
                print(f"batch {batch:3}: {mode:8} fell back to today's steps: {reason}")
                per_batch[batch] = {"fell_back": reason}
                continue
            same = sum(a == b for a, b in zip(tokens, expected, strict=True))
            print(f"batch {batch:3}: today's {today * 1000:7.2f} ms/step, {mode} {seconds * 1000:7.2f} ms/step: "
                  f"{today / seconds:5.2f}x; first pass {first:6.1f} s; greedy tokens equal to today's in {same}/{batch} rows")
            per_batch[batch] = {"today_ms": round(today * 1000, 3), "ms": round(seconds * 1000, 3),
                                "speedup": round(today / seconds, 2), "first_pass_s": round(first, 2),
                                "rows_equal": same, "rows": batch}
        results[mode] = per_batch
    return {"modes": results}


def append_record(entry: dict[str, Any]) -> Path:
    """Append a run, with its command, date and machine, to benchmarks/results/compile_decode.json."""
    import transformers

    path = Path(__file__).parent / "results" / "compile_decode.json"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    record = {"command": "python " + " ".join(sys.argv), "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "device": device, "torch": torch.__version__, "transformers": transformers.__version__, **entry}
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(runs + [record], indent=2) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a model folder or hub id (default: random weights of --config-size)")
    p.add_argument("--config-size", choices=sorted(SIZES), default="qwen2-0.5b")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--prompt", type=int, default=100, help="prompt tokens of the first setting's first batch")
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--compile-decode", nargs="+", choices=("eager", "compile", "graphs"),
                   help="today's decode steps beside fixed-shape ones of these modes (GPU or CPU)")
    p.add_argument("--dtype", default=None, help="weights' dtype (default bfloat16 on a GPU, float32 on a CPU)")
    args = p.parse_args()
    from transformers import AutoModelForCausalLM

    path = args.model or build_model(Path(tempfile.mkdtemp(prefix="selfalign-bench-")), args.config_size)
    if args.compile_decode:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
        print(f"{where}, torch {torch.__version__}, model {args.model or args.config_size} ({dtype}), {args.steps} greedy "
              f"decode steps a pass, prompts of about {args.prompt} tokens")
        with forward_mode():
            results = compare_modes(model, device, args.compile_decode, args.batches, args.prompt, args.steps)
        print("recorded in", append_record({"script": "decode_attention.py", "model": args.model or args.config_size,
                                            "dtype": str(dtype), "steps": args.steps, "prompt": args.prompt, **results}))
        return
    if not torch.cuda.is_available():
        sys.exit("decode_attention.py measures cuDNN's attention: it needs a CUDA GPU (or give --compile-decode)")
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
