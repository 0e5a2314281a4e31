"""The `openai:` provider's cost over the bare official client: calls per second at a fixed
concurrency against a local server that answers at once, measured in one run.

    python benchmarks/openai_overhead.py                    # 64 in flight, 3 rounds of 2,000 calls each way
    python benchmarks/openai_overhead.py --concurrency 16 --calls 1000 --rounds 5

The server (uvicorn, in a process of its own) returns the same chat completion to every request
without looking at it, so the client side is what is measured. Two ways of making the same
calls, alternated round by round (and which goes first, too) so that a busy machine slows both alike:
- bare: `openai.AsyncOpenAI(...).chat.completions.create`, with the HTTP connection limits the
  provider uses;
- selfalign: `load_model("openai:bench@URL")` and `Model.chat`, i.e. the provider behind the
  model wrapper (concurrency limit, retries, usage counting; no run store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time

import openai

from selfalign.llm import Model, load_model
from selfalign.llm.types import Completion
from selfalign.llm.openai_wire import connection_limits

ANSWER = json.dumps({
    "id": "cmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short answer."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
}).encode()
MESSAGES = [{"role": "user", "content": "How do I keep my houseplants alive while I am away for a week?"}]


async def app(scope, receive, send) -> None:
    """Every request gets ANSWER, once its body has arrived."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


async def in_flight(call, calls: int, concurrency: int, started: tuple[float, float]) -> tuple[float, float]:
    """Calls per second making `calls` calls, `concurrency` at a time, and this process's CPU
    milliseconds per call (the server's excluded: it runs in a process of its own), both from
    `started`: before the client was made, since ours makes its client at the first call."""
    left = iter(range(calls))

    async def worker() -> None:
        for i in left:
            await call(i)

    start, cpu = started
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start), (time.process_time() - cpu) / calls * 1e3


async def bare(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    started = clock()
    client = openai.AsyncOpenAI(
        api_key="EMPTY", base_url=url, max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(limits=connection_limits(concurrency)),
    )

    async def call(i: int) -> None:
        r = await client.chat.completions.create(
            model="bench", messages=MESSAGES, temperature=0.0, top_p=1.0, max_tokens=64, seed=i)
        assert r.choices[0].message.content

    try:
        return await in_flight(call, calls, concurrency, started)
    finally:
        await client.close()


async def ours(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    started = clock()
    model = load_model(f"openai:bench@{url}", max_concurrency=concurrency)

    async def call(i: int) -> None:
        r = await model.chat(MESSAGES, temperature=0.0, top_p=1.0, max_tokens=64, seed=i)
        assert r.text

    try:
        return await in_flight(call, calls, concurrency, started)
    finally:
        await model.close()


async def wrapper_alone(calls: int = 20000) -> float:
    """Microseconds of CPU the model wrapper adds to a call: `Model.chat` over a provider that
    answers at once, with the provider's own cost taken out."""

    # Not ScriptedProvider: it keeps every request, and the collector's walks over them would
    # count as the wrapper's (22 us a call instead of 12).
    class AtOnce:
        name, constrained = "at-once", False

        async def complete(self, request: object) -> Completion:
            return Completion(text="A short answer.", prompt_tokens=12, completion_tokens=4, finish_reason="stop")

        async def close(self) -> None:
            pass

    provider = AtOnce()
    model = Model(provider, max_concurrency=64)
    cpu = time.process_time()
    for i in range(calls):
        await model.chat(MESSAGES, temperature=0.0, top_p=1.0, max_tokens=64, seed=i)
    wrapped = time.process_time() - cpu
    cpu = time.process_time()
    for i in range(calls):
        await provider.complete(None)
    return (wrapped - (time.process_time() - cpu)) / calls * 1e6


async def wait_for(url: str) -> None:
    for _ in range(200):
        try:
            await bare(url, 1, 1)
            return
        except openai.APIConnectionError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the benchmark server at {url} did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--calls", type=int, default=2000, help="calls per round and way")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        asyncio.run(wait_for(url))
        rates: dict[str, list[float]] = {"bare": [], "selfalign": []}
        cpu: dict[str, list[float]] = {"bare": [], "selfalign": []}
        ways = [("bare", bare), ("selfalign", ours)]
        for round_ in range(args.rounds):
            for name, way in ways if round_ % 2 == 0 else ways[::-1]:  # neither always goes first
                rate, ms = asyncio.run(way(url, args.calls, args.concurrency))
                rates[name].append(rate)
                cpu[name].append(ms)
    finally:
        server.terminate()
        server.join()
    for name, r in rates.items():
        print(f"{name:>10}: {statistics.median(r):.0f} calls/s (median of {', '.join(f'{x:.0f}' for x in r)}); "
              f"{statistics.median(cpu[name]):.3f} ms of this process's CPU per call")
    # Each round's two ways ran back to back: the median of their ratios cancels the machine's
    # drift between rounds, which on a shared machine is larger than the difference measured.
    ratio = statistics.median(o / b for o, b in zip(rates["selfalign"], rates["bare"], strict=True))
    cpu_ratio = statistics.median(o / b for o, b in zip(cpu["selfalign"], cpu["bare"], strict=True))
    print(f"selfalign / bare: {ratio:.3f}x calls/s at concurrency {args.concurrency}; CPU per call {cpu_ratio:.3f}x "
          f"(medians of the rounds' paired ratios; the client's CPU is the ceiling here; one run)")
    wrapper_us = asyncio.run(wrapper_alone())
    print(f"the model wrapper alone: {wrapper_us:.1f} us of CPU per call, "
          f"{wrapper_us / 10 / statistics.median(cpu['bare']):.1f}% of the bare client's")
    print(json.dumps({"args": vars(args), "calls_per_second": rates, "cpu_ms_per_call": cpu, "ratio": ratio,
                      "cpu_ratio": cpu_ratio, "wrapper_us_per_call": wrapper_us}))


if __name__ == "__main__":
    main()
