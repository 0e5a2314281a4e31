"""The `hf:` engine: N concurrent requests batched vs. one at a time vs. one static `generate` batch.

    python benchmarks/hf_batching.py                               # the tiny model, CPU
    python benchmarks/hf_batching.py --model smollm2 -n 16 --max-tokens 64          # a real 49k vocabulary
    python benchmarks/hf_batching.py --model smollm2 -n 16 --max-tokens 64 --json   # every row JSON-constrained
    python benchmarks/hf_batching.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda -n 64
    python benchmarks/hf_batching.py --config-size qwen2-0.5b --dtype bfloat16 --device cuda -n 32 --max-tokens 128
    python benchmarks/hf_batching.py --mixed                       # mixed lengths, schemas, greedy
    python benchmarks/hf_batching.py --config-size qwen2-0.5b --dtype bfloat16 --device cuda -n 32 --max-tokens 128 \
        --greedy --compile-decode graphs compile --no-sequential   # today's decode steps beside fixed-shape ones

All passes send the same requests (different prompts, sampled with a seed each) through one
HFProvider: the sequential pass awaits each before sending the next; the batched pass issues
them all at once and the engine decodes them in its running batch (continuous batching); the
static pass sends them at once to the engine's fallback, one `model.generate` call for the
whole batch, which runs until its longest row is done. It prints requests/s and generated
tokens/s of each pass and the ratios. The model is warmed up first so that loading, grammar
compilation and first-call costs are not timed. Texts must be identical in every pass (per-row
seeded sampling); a mismatch is reported.

`--json` constrains every request to a JSON schema (xgrammar). `--mixed` sends a workload like a
simulation's instead: max_tokens drawn from {32, 256, 1024}, a third of the requests constrained
to a JSON schema (bounded strings), a quarter greedy; the long rows keep a batch going long
after the short ones are done. `--greedy` makes every request greedy.

`--compile-decode MODE...` then opens the model again once per mode with fixed-shape decode
steps (`HFProvider(compile_decode=MODE)`: "eager", "compile", "graphs"), runs the workload once
to compile or capture its buckets (timed apart), then the same passes as today's provider, and
prints each pass's ratio to today's and how many texts differ from today's; the run is appended
to benchmarks/results/compile_decode.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import random
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from selfalign.llm.hf import HFProvider
from selfalign.llm.tiny import build_tiny_model
from selfalign.llm.types import ChatRequest, Completion, Message, Sampling

TOPICS = ["kindness", "honesty", "privacy", "safety", "fairness", "harm", "consent", "trust"]


class Verdict(BaseModel):
    """Every string bounded: a random model fills unbounded strings until max_tokens."""

    label: Literal["safe", "unsafe", "unclear"]
    reason: str = Field(max_length=200)
    notes: list[Annotated[str, Field(max_length=40)]] = Field(max_length=4)


def make_mixed_requests(n: int, greedy: bool = False) -> list[ChatRequest]:
    """n requests of mixed length: max_tokens in {32, 256, 1024}, some JSON, some greedy."""
    rng = random.Random(0)
    schema = Verdict.model_json_schema()
    requests = []
    for i in range(n):
        prompt = f"Question {i}: what does {TOPICS[i % len(TOPICS)]} ask of us? " * (1 + i % 3)
        temperature = 0.0 if greedy or i % 4 == 3 else 0.8
        requests.append(
            ChatRequest(
                (Message(role="user", content=prompt),),
                Sampling(temperature=temperature, top_p=0.95, max_tokens=rng.choice([32, 256, 1024]), seed=i),
                schema if i % 3 == 0 else None,
            )
        )
    return requests


def make_requests(n: int, max_tokens: int, json_schema: bool = False, greedy: bool = False) -> list[ChatRequest]:
    """n distinct chat requests of varied prompt length, each with its own seed."""
    schema = Verdict.model_json_schema() if json_schema else None
    return [
        ChatRequest(
            (Message(role="user", content=f"Question {i}: what does {TOPICS[i % len(TOPICS)]} ask of us? " * (1 + i % 3)),),
            Sampling(temperature=0.0 if greedy else 0.8, top_p=0.95, max_tokens=max_tokens, seed=i),
            schema,
        )
        for i in range(n)
    ]


async def one_at_a_time(provider: HFProvider, requests: list[ChatRequest]) -> tuple[float, list[Completion]]:
    start = time.perf_counter()
    results = [await provider.complete(r) for r in requests]
    return time.perf_counter() - start, results


async def all_at_once(provider: HFProvider, requests: list[ChatRequest]) -> tuple[float, list[Completion]]:
    start = time.perf_counter()
    results = await asyncio.gather(*(provider.complete(r) for r in requests))
    return time.perf_counter() - start, list(results)


async def static_batch(provider: HFProvider, requests: list[ChatRequest]) -> tuple[float, list[Completion]]:
    """All requests in one `model.generate` call (the engine's fallback path)."""
    engine = provider.engine
    engine.continuous, engine.max_batch_size = False, max(engine.max_batch_size, len(requests))
    try:
        return await all_at_once(provider, requests)
    finally:
        engine.continuous = True


async def main(args: argparse.Namespace) -> None:
    if args.config_size:  # random weights of a real architecture (benchmarks/train_bench.py's sizes)
        sys.path.insert(0, str(Path(__file__).parent))
        from train_bench import build_model

        model = str(build_model(Path(tempfile.mkdtemp(prefix="selfalign-bench-")), args.config_size))
    else:
        model = args.model or str(build_tiny_model(tempfile.mkdtemp(prefix="selfalign-tiny-")))
    provider = HFProvider(model, device=args.device, dtype=args.dtype, max_batch_size=args.batch)
    requests = make_mixed_requests(args.n, args.greedy) if args.mixed else make_requests(args.n, args.max_tokens, args.json, args.greedy)
    await all_at_once(provider, requests[: min(4, args.n)])  # warm-up
    sequential, seq_results = await one_at_a_time(provider, requests) if args.sequential else (None, None)
    calls_before = provider.engine.generate_calls
    batched, batch_results = await all_at_once(provider, requests)
    calls = provider.engine.generate_calls - calls_before
    static, static_results = await static_batch(provider, requests)
    tokens = sum(r.completion_tokens for r in batch_results)
    reference = seq_results or batch_results
    mismatches = [sum(a.text != b.text for a, b in zip(reference, other, strict=True)) for other in (batch_results, static_results)]

    vocab = len(provider.tokenizer)
    lengths = "mixed max_tokens {32, 256, 1024}, some JSON" if args.mixed else f"max_tokens {args.max_tokens}"
    kind = ", every row JSON-constrained" if args.json else ""
    print(f"model {provider.name} ({vocab} tokens vocabulary) on {provider.device}, {args.n} requests, {lengths}{kind}")
    print(f"{tokens} tokens generated ({sum(r.finish_reason == 'stop' for r in batch_results)} rows ended by themselves)")
    passes = [("batched", batched, f"{calls} prefills, rows join and leave"),
              ("static generate", static, "1 generate call, runs to its longest row")]
    if sequential is not None:
        passes.insert(0, ("one at a time", sequential, f"{args.n} prefills"))
    for label, seconds, note in passes:
        print(f"{label:16}: {args.n / seconds:8.2f} requests/s {tokens / seconds:9.1f} tokens/s  ({seconds:.2f} s, {note})")
    if sequential is not None:
        print(f"batched / one at a time : {sequential / batched:6.2f}x")
    print(f"batched / static        : {static / batched:6.2f}x")
    print(f"texts differing from {'one at a time' if seq_results else 'batched'}: batched {mismatches[0]}, static {mismatches[1]}")
    if args.compile_decode:
        results = {mode: await compare_mode(args, model, mode, requests, provider, batch_results) for mode in args.compile_decode}
        sys.path.insert(0, str(Path(__file__).parent))
        from decode_attention import append_record

        print("recorded in", append_record({
            "script": "hf_batching.py", "model": args.model or args.config_size or "tiny", "dtype": args.dtype, "requests": args.n,
            "max_tokens": "mixed" if args.mixed else args.max_tokens, "greedy": args.greedy, "json": args.json, "tokens": tokens,
            "modes": results,
        }))
    await provider.close()


async def compare_mode(args, model: str, mode: str, requests, today: HFProvider, reference: list[Completion]) -> dict:
    """The same passes on a provider with fixed-shape decode steps, each right after today's
    (on `today`): ratios, and texts compared with today's batched pass (`reference`)."""
    provider = HFProvider(model, device=args.device, dtype=args.dtype, max_batch_size=args.batch, compile_decode=mode)
    passes = [("batched", all_at_once)] + ([("one at a time", one_at_a_time)] if args.sequential else [])
    out: dict = {}
    try:
        start = time.perf_counter()
        for _, run in passes:  # compiles or captures the buckets these passes meet
            await run(provider, requests)
        out["first_passes_s"] = round(time.perf_counter() - start, 2)
        print(f"{mode:8} first passes (compiles, captures): {out['first_passes_s']:.2f} s")
        for label, run in passes:
            seconds_today, _ = await run(today, requests)
            seconds, results = await run(provider, requests)
            differ = sum(a.text != b.text for a, b in zip(reference, results, strict=True))
            out[label] = {"today_s": round(seconds_today, 3), "s": round(seconds, 3),
                          "speedup": round(seconds_today / seconds, 2), "texts_differing": differ}
            print(f"{mode:8} {label:13}: {seconds_today / seconds:6.2f}x today's ({seconds:.2f} s vs {seconds_today:.2f} s); "
                  f"texts differing from today's: {differ}")
        static = provider.engine.decoder.static
        out["fell_back"] = "not opened, see the log line" if static is None else static.failed
        if static is not None:  # how often the cache was copied in, and the shapes met
            out |= {"steps": static.steps, "relayouts": static.relayouts, "buckets": sorted(static.buckets_used)}
        if out["fell_back"]:
            print(f"{mode:8} FELL BACK to today's steps: {out['fell_back']}")
    finally:
        await provider.close()
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an hf: target: path, hub id, .gguf file, smollm2 (default: a fresh tiny model)")
    parser.add_argument("--config-size", help="random weights of this architecture (train_bench.py's sizes, e.g. qwen2-0.5b)")
    parser.add_argument("--dtype", default="auto", help="auto (the checkpoint's on GPU, float32 on CPU) or e.g. bfloat16")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("-n", type=int, default=32, help="number of requests")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="every request constrained to a JSON schema")
    parser.add_argument("--mixed", action="store_true", help="mixed max_tokens, JSON and greedy rows")
    parser.add_argument("--batch", type=int, default=32, help="max_batch_size of the provider")
    parser.add_argument("--greedy", action="store_true", help="every request greedy (temperature 0)")
    parser.add_argument("--no-sequential", dest="sequential", action="store_false", help="skip the one-at-a-time passes")
    parser.add_argument("--compile-decode", nargs="+", choices=("eager", "compile", "graphs"),
                        help="then the same passes with fixed-shape decode steps of these modes, beside today's")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
