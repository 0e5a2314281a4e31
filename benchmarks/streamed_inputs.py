"""Time and memory from a large prompts file to the run's first model call, old path vs new.

    python benchmarks/streamed_inputs.py                  # 1,000,000 rows, this tree vs the commit before streaming
    python benchmarks/streamed_inputs.py --rows 200000 --after 10 --out benchmarks/results/streamed_inputs.json

It writes a JSONL prompts file of `--rows` rows (about 115 bytes each), then runs
`selfalign critique-revise --model scripted:FILE --prompts FILE --out DIR` as a user would (a
fresh process, a fresh run folder) under two source trees: this one, and `--baseline` (a commit
of this repository, extracted with `git archive`). In each process the scripted provider is
wrapped so that its first call prints the seconds since the command was started and the
process's peak resident memory so far; the run then goes on for `--after` seconds (the store
still filling, items running) and prints its peak memory again, and how many items were in the
store and done, before it is stopped (as a kill would stop it). The same command is then run
again on the same folder, as a user resumes a run, and measured the same way. Last, the floor:
the same command on a one-row file, this tree (the command's own start: its imports). The ratios
of the two trees are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BEFORE_STREAMING = "294ccef"  # the last commit that read and added every input before the first model call

# Runs inside the measured process: wraps the scripted provider, then runs the CLI.
DRIVER = r"""
import json, os, resource, sqlite3, sys, threading, time
from selfalign.llm.scripted import ScriptedProvider
t0, after, out = float(os.environ["BENCH_T0"]), float(os.environ["BENCH_AFTER"]), os.environ["BENCH_OUT"]
complete, first = ScriptedProvider.complete, []
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def report():
    time.sleep(after)
    db = sqlite3.connect(os.path.join(out, "run.sqlite"))
    items, done = db.execute("SELECT COUNT(*), SUM(status='done') FROM items").fetchone()
    print(json.dumps({"peak_mb_after": round(peak_mb(), 1), "items_in_store_after": items, "done_after": done or 0}), flush=True)
    os._exit(0)
async def timed(self, request):
    if not first:
        first.append(time.time())
        print(json.dumps({"first_call_s": round(first[0] - t0, 2), "peak_mb_first_call": round(peak_mb(), 1)}), flush=True)
        threading.Thread(target=report, daemon=True).start()
    return await complete(self, request)
ScriptedProvider.complete = timed
from selfalign.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def write_prompts(path: Path, rows: int) -> None:
    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"prompt": f"Explain, step by step and with one example, how instruction number {i} should be answered kindly."}) + "\n")


def baseline_src(commit: str, into: Path) -> Path:
    """The `src` folder of `commit`, extracted from this repository."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def measure(src: Path, prompts: Path, replies: Path, out: Path, after: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "BENCH_AFTER": str(after), "BENCH_OUT": str(out), "OMP_NUM_THREADS": "1"}
    args = ["critique-revise", "--model", f"scripted:{replies}", "--prompts", str(prompts), "--out", str(out), "--quiet"]
    env["BENCH_T0"] = repr(time.time())
    proc = subprocess.run([sys.executable, "-c", DRIVER, *args], env=env, capture_output=True, text=True, timeout=900)
    figures: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            figures.update(json.loads(line))
    if "first_call_s" not in figures:
        raise SystemExit(f"{src}: no model call was made (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", default=BEFORE_STREAMING, help="commit whose src/ is the old path ('' for none)")
    parser.add_argument("--after", type=float, default=20.0, help="seconds the run goes on after its first call")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        prompts, replies = tmp_path / "prompts.jsonl", tmp_path / "replies.jsonl"
        write_prompts(prompts, args.rows)
        file_mb = prompts.stat().st_size / 1e6
        replies.write_text(json.dumps({"match": "", "replies": ["An answer.", "Another answer."]}) + "\n")
        trees = {"new": REPO / "src"}
        if args.baseline:
            trees["old"] = baseline_src(args.baseline, tmp_path)
        results = {}
        for name, src in trees.items():
            results[name] = measure(src, prompts, replies, tmp_path / f"run-{name}", args.after)
            results[name]["resumed"] = measure(src, prompts, replies, tmp_path / f"run-{name}", args.after)
            print(name, json.dumps(results[name]), flush=True)
        write_prompts(one_row := tmp_path / "one.jsonl", 1)
        results["floor_one_row"] = measure(trees["new"], one_row, replies, tmp_path / "run-one", 0)
        print("floor", json.dumps(results["floor_one_row"]), flush=True)
    summary = {
        "command": "python benchmarks/streamed_inputs.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared and loaded (load average {os.getloadavg()[0]:.2f} at the end)",
        "rows": args.rows,
        "prompts_file_mb": round(file_mb, 1),
        "baseline": args.baseline or None,
        **results,
    }
    if "old" in results:
        summary["first_call_speedup"] = round(results["old"]["first_call_s"] / results["new"]["first_call_s"], 2)
        summary["resumed_first_call_speedup"] = round(results["old"]["resumed"]["first_call_s"] / results["new"]["resumed"]["first_call_s"], 2)
        summary["peak_memory_ratio_first_call"] = round(results["new"]["peak_mb_first_call"] / results["old"]["peak_mb_first_call"], 3)
        print(f"first call: {summary['first_call_speedup']}x sooner ({summary['resumed_first_call_speedup']}x when resumed); "
              f"peak memory at it: {summary['peak_memory_ratio_first_call']}x the old path's")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
