"""`selfalign serve` against the servers people run instead on a CPU: the same OpenAI-client work.

    python benchmarks/peers.py --model hf:smollm2 --gguf GGUF [--gguf GGUF2] \
        [--vllm-python .venv-vllm/bin/python --vllm-model models/smollm2] \
        [--peer NAME=URL ...] [--rounds 3] [--requests 8] [--max-tokens 64] [--threads 2]

Servers: `selfalign` (`selfalign serve --model SPEC`), `llamacpp` (llama-cpp-python's server on a
GGUF file, started with this Python, `pip install 'selfalign[llamacpp]'`), `vllm` (vLLM's CPU
build, started with the Python of its own virtualenv, as docs/models.md says); each started here
on a free port with `--threads` threads, or, for a server started independently, given by URL
with `--peer NAME=URL` (its first model in /v1/models is asked).

Work, the same for every server: `--requests` fixed prompts, greedy (temperature 0, seed 0),
`max_tokens` fixed, streamed, sent with 1 and with 8 in flight; then the same with a JSON
schema (`response_format`: json_schema, or json_object with the schema where the server refuses
that). Each row: completion tokens per second of wall time (tokens from the server's usage, else
the text's tokens counted with the model's tokenizer) and the median time to the first content
chunk; for a server started here, also tokens per second of its processes' CPU time (on a
machine shared with other jobs that figure moves less than the wall clock). Rounds alternate the servers' order, so a load from elsewhere on the machine falls on all
of them alike; the median round is reported, with each server's speed as a ratio to selfalign's.
Every run is appended to benchmarks/results/peers.json with its command and machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openai

RESULTS = Path(__file__).parent / "results" / "peers.json"
PROMPTS = [
    "Explain in three sentences why the sky is blue.",
    "Write a short note to a neighbour asking them to keep the noise down at night.",
    "What are three ways to save water at home?",
    "Describe how a bicycle works to a ten-year-old.",
    "Give two reasons to back up your files, and how often to do it.",
    "Summarise the plot of Romeo and Juliet in a few sentences.",
    "How should I prepare for a job interview?",
    "What is the difference between weather and climate?",
]
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 80},  # bounded: the object ends within max_tokens
        "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
STARTUP_S = 900  # vLLM's CPU build imports for minutes on a busy 2-core machine


@dataclass
class Server:
    name: str
    url: str
    model: str = ""
    command: list[str] = field(default_factory=list)  # empty: started independently
    structured: str = ""  # the response_format mode it takes: json_schema or json_object
    process: subprocess.Popen | None = None


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """How each server this run starts is started (docs/models.md, docs/benchmarks.md)."""
    out = {}
    if args.model:
        out["selfalign"] = [sys.executable, "-m", "selfalign.cli.main", "serve", "--model", args.model,
                            "--served-name", "smollm2", "--port", "{port}"]
    for n, gguf in enumerate(args.gguf):
        out["llamacpp" + (f"-{n + 1}" if n else "")] = [
            sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2", "--n_ctx", "4096",
            "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--host", "127.0.0.1", "--port", "{port}"]
    if args.vllm_python:
        out["vllm"] = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.vllm_model,
                       "--served-model-name", "smollm2", "--port", "{port}", "--enforce-eager", "--dtype", "float32",
                       "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
                       "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096", "--max-model-len", "4096"]
    return out


def start(name: str, command: list[str], threads: int, logs: Path) -> Server:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    # torch's and vLLM's threads as many as llama.cpp's; vLLM pins none to a core (another job may hold it)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_CPU_KVCACHE_SPACE": "2"}
    log = open(logs / f"{name}.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Server(name, f"http://127.0.0.1:{port}/v1", command=command, process=process)


def wait_ready(server: Server, logs: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            tail = (logs / f"{server.name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "/models", timeout=5) as response:
                models = json.load(response).get("data") or []
            if models:
                server.model = models[0]["id"]
                return
        except OSError:
            pass
        time.sleep(2)
    raise RuntimeError(f"{server.name} did not answer within {STARTUP_S}s (log in {logs})")


def stop(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


def cpu_seconds(server: Server) -> float | None:
    """CPU time of every process of a started server (its session: the server and the workers it
    forks), from /proc; None for a server started independently."""
    if server.process is None:
        return None
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if int(fields[3]) == server.process.pid:  # pgid (the server leads its own session)
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- the work -------------------------------------------------------------------------------


def response_format(mode: str) -> dict[str, Any]:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    return {"type": "json_object", "schema": SCHEMA}  # llama-cpp-python's way


async def one(client: openai.AsyncOpenAI, server: Server, prompt: str, max_tokens: int, schema: bool) -> dict[str, Any]:
    """One streamed request: seconds to the first content chunk and to the end, tokens, text."""
    extra: dict[str, Any] = {"response_format": response_format(server.structured)} if schema else {}
    started = time.perf_counter()
    first, parts, usage = None, [], None
    stream = await client.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
        temperature=0.0, seed=0, stream=True, stream_options={"include_usage": True}, **extra)
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                first = first or time.perf_counter()
                parts.append(choice.delta.content)
    end = time.perf_counter()
    return {"ttft": (first or end) - started, "seconds": end - started, "usage": usage, "text": "".join(parts)}


async def trial(server: Server, concurrency: int, args: argparse.Namespace, schema: bool, count, requests: int = 0) -> dict[str, Any]:
    """`--requests` prompts (or `requests`), `concurrency` of them in flight at once."""
    client = openai.AsyncOpenAI(base_url=server.url, api_key="EMPTY", max_retries=0, timeout=1800)
    gate = asyncio.Semaphore(concurrency)

    async def gated(prompt: str) -> dict[str, Any]:
        async with gate:
            return await one(client, server, prompt, args.max_tokens, schema)

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests or args.requests)]
    started, cpu = time.perf_counter(), cpu_seconds(server)
    answers = await asyncio.gather(*(gated(p) for p in prompts))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server) - cpu if cpu is not None else None
    await client.close()
    tokens = [a["usage"] if a["usage"] is not None else count(a["text"]) for a in answers]
    return {
        "server": server.name, "concurrency": concurrency, "schema": schema, "requests": len(answers),
        "tokens": sum(tokens), "tokens_from": "usage" if all(a["usage"] is not None for a in answers) else "tokenizer",
        "wall_s": round(wall, 3), "tokens_per_s": round(sum(tokens) / wall, 2),
        "server_cpu_s": round(cpu, 2) if cpu is not None else None,
        "tokens_per_cpu_s": round(sum(tokens) / cpu, 2) if cpu else None,
        "ttft_median_s": round(statistics.median(a["ttft"] for a in answers), 3),
        "valid_json": sum(valid(a["text"]) for a in answers) if schema else None,
        "texts": [a["text"] for a in answers],
    }


def valid(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("answer"), str) and value.get("confidence") in ("low", "medium", "high")


async def structured_mode(server: Server) -> str:
    """json_schema where the server takes it, else json_object with the schema."""
    client = openai.AsyncOpenAI(base_url=server.url, api_key="EMPTY", max_retries=0, timeout=600)
    try:
        await client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": "Say yes."}], max_tokens=8,
            temperature=0.0, response_format=response_format("json_schema"))
        return "json_schema"
    except openai.APIError:
        return "json_object"
    finally:
        await client.close()


async def measure(servers: list[Server], args: argparse.Namespace, count) -> list[dict[str, Any]]:
    rows = []
    workloads = [(c, s) for s in (False, True) for c in args.concurrency]
    for server in servers:
        server.structured = await structured_mode(server)
        await trial(server, 1, args, False, count, requests=1)  # warm-up: first-call costs are not timed
    for round_no in range(args.rounds):
        order = servers if round_no % 2 == 0 else servers[::-1]
        for concurrency, schema in workloads:
            for server in order:
                row = await trial(server, concurrency, args, schema, count)
                row["round"] = round_no
                rows.append(row)
                print(f"round {round_no} {server.name:10} c={concurrency} schema={schema!s:5} "
                      f"{row['tokens_per_s']:7.1f} tok/s  ttft {row['ttft_median_s']:.2f}s  load {os.getloadavg()[0]:.2f}",
                      flush=True)
    return rows


# -- the table ------------------------------------------------------------------------------


def summary(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Per workload and server: median tokens/s and TTFT over rounds, ratio to selfalign's."""
    out = []
    keys = sorted({(r["schema"], r["concurrency"]) for r in rows})
    for schema, concurrency in keys:
        cell = {}
        for name in names:
            mine = [r for r in rows if r["server"] == name and r["schema"] == schema and r["concurrency"] == concurrency]
            if mine:
                per_cpu = [r["tokens_per_cpu_s"] for r in mine if r["tokens_per_cpu_s"] is not None]
                cell[name] = {
                    "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in mine), 2),
                    "tokens_per_cpu_s": round(statistics.median(per_cpu), 2) if per_cpu else None,
                    "ttft_median_s": round(statistics.median(r["ttft_median_s"] for r in mine), 3),
                    "valid_json": f"{sum(r['valid_json'] for r in mine)}/{sum(r['requests'] for r in mine)}" if schema else None,
                }
        base = cell.get("selfalign", {}).get("tokens_per_s")
        for name, value in cell.items():
            value["selfalign_over_it"] = round(base / value["tokens_per_s"], 2) if base and value["tokens_per_s"] else None
        out.append({"schema": schema, "concurrency": concurrency, "servers": cell})
    return out


def print_table(table: list[dict[str, Any]]) -> None:
    print("\n| work | server | tokens/s | tokens/CPU-s | TTFT (s) | selfalign / server | valid JSON |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for entry in table:
        work = f"{entry['concurrency']} at a time" + (", JSON schema" if entry["schema"] else "")
        for name, v in entry["servers"].items():
            print(f"| {work} | {name} | {v['tokens_per_s']} | {v['tokens_per_cpu_s'] or ''} | {v['ttft_median_s']} | "
                  f"{v['selfalign_over_it']} | {v['valid_json'] or ''} |")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def record(entry: dict[str, Any]) -> None:
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    runs.append(entry)
    RESULTS.write_text(json.dumps(runs, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="selfalign serve's model spec (e.g. hf:smollm2)")
    ap.add_argument("--gguf", action="append", default=[], help="GGUF file for llama-cpp-python's server (repeat: one server each)")
    ap.add_argument("--vllm-python", help="the Python of vLLM's virtualenv")
    ap.add_argument("--vllm-model", help="the checkpoint folder vLLM serves (selfalign save-model hf:smollm2 DIR)")
    ap.add_argument("--peer", action="append", default=[], metavar="NAME=URL", help="a server started independently")
    ap.add_argument("--tokenizer", default="hf:smollm2", help="hf: spec whose tokenizer counts tokens a server gives no usage for")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads each started server computes with")
    ap.add_argument("--logs", default="runs/peers-logs", help="folder of the started servers' logs")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from selfalign.llm.checkpoints import locate

    checkpoint = locate(args.tokenizer.removeprefix("hf:"))
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **checkpoint.options())
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731

    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    servers = [start(name, command, args.threads, logs) for name, command in commands(args).items()]
    servers += [Server(name, url) for name, _, url in (p.partition("=") for p in args.peer)]
    load_before = os.getloadavg()
    try:
        for server in servers:
            wait_ready(server, logs)
            print(f"{server.name}: {server.url} serves {server.model}", flush=True)
        rows = asyncio.run(measure(servers, args, count))
    finally:
        for server in servers:
            stop(server)
    table = summary(rows, [s.name for s in servers])
    print_table(table)
    if not args.no_record:
        record({
            "command": "python " + shlex.join(sys.argv),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {**machine(), "load_before": load_before, "load_after": os.getloadavg()},
            "servers": {s.name: {"url": s.url, "command": s.command or "started independently", "structured": s.structured,
                             "model": s.model}
                        for s in servers},
            "summary": table,
            "rows": rows,
        })


if __name__ == "__main__":
    main()
