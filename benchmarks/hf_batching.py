"""Dynamic batching in the `hf:` provider: N concurrent requests vs. the same N one at a time.

    python benchmarks/hf_batching.py                               # the tiny random model, CPU
    python benchmarks/hf_batching.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda -n 64
    python benchmarks/hf_batching.py --mixed                       # mixed lengths, schemas, greedy

Both passes send the same requests (different prompts, sampled with a seed each, same
max_tokens) through one HFProvider; the sequential pass awaits each before sending the next,
the concurrent pass issues them all at once and lets the provider batch them. It prints
requests/s of each pass and the speed-up. The model is warmed up first so that loading and
first-call costs are not timed. Texts must be identical in both passes (per-row seeded
sampling); a mismatch is reported.

`--mixed` sends a workload like a simulation's instead: max_tokens drawn from {32, 256, 1024},
a third of the requests constrained to a JSON schema (bounded strings), a quarter greedy; the
long rows keep a batch going long after the short ones are done.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

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


def make_mixed_requests(n: int) -> list[ChatRequest]:
    """n requests of mixed length: max_tokens in {32, 256, 1024}, some JSON, some greedy."""
    rng = random.Random(0)
    schema = Verdict.model_json_schema()
    requests = []
    for i in range(n):
        prompt = f"Question {i}: what does {TOPICS[i % len(TOPICS)]} ask of us? " * (1 + i % 3)
        temperature = 0.0 if i % 4 == 3 else 0.8
        requests.append(
            ChatRequest(
                (Message(role="user", content=prompt),),
                Sampling(temperature=temperature, top_p=0.95, max_tokens=rng.choice([32, 256, 1024]), seed=i),
                schema if i % 3 == 0 else None,
            )
        )
    return requests


def make_requests(n: int, max_tokens: int) -> list[ChatRequest]:
    """n distinct chat requests of varied prompt length, each with its own seed."""
    return [
        ChatRequest(
            (Message(role="user", content=f"Question {i}: what does {TOPICS[i % len(TOPICS)]} ask of us? " * (1 + i % 3)),),
            Sampling(temperature=0.8, top_p=0.95, max_tokens=max_tokens, seed=i),
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


async def main(args: argparse.Namespace) -> None:
    model = args.model or str(build_tiny_model(tempfile.mkdtemp(prefix="selfalign-tiny-")))
    provider = HFProvider(model, device=args.device, max_batch_size=args.batch)
    requests = make_mixed_requests(args.n) if args.mixed else make_requests(args.n, args.max_tokens)
    await all_at_once(provider, requests[: min(4, args.n)])  # warm-up
    sequential, seq_results = await one_at_a_time(provider, requests)
    calls_before = provider.generate_calls
    batched, batch_results = await all_at_once(provider, requests)
    calls = provider.generate_calls - calls_before
    tokens = sum(r.completion_tokens for r in batch_results)
    mismatches = sum(a.text != b.text for a, b in zip(seq_results, batch_results, strict=True))
    await provider.close()

    lengths = "mixed max_tokens {32, 256, 1024}, some JSON" if args.mixed else f"max_tokens {args.max_tokens}"
    print(f"model {provider.name} on {provider.device}, {args.n} requests, {lengths}, {tokens} tokens generated")
    print(f"one at a time : {args.n / sequential:8.1f} requests/s  ({sequential:.2f} s, {args.n} generate calls)")
    print(f"batched       : {args.n / batched:8.1f} requests/s  ({batched:.2f} s, {calls} generate calls)")
    print(f"speed-up      : {sequential / batched:8.1f}x")
    print(f"texts differing between the two passes: {mismatches}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="path or hub id (default: a freshly built tiny random model)")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("-n", type=int, default=32, help="number of requests")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--mixed", action="store_true", help="mixed max_tokens, JSON and greedy rows")
    parser.add_argument("--batch", type=int, default=32, help="max_batch_size of the provider")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
