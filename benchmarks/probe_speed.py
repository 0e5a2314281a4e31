"""Seconds for `selfalign probe`'s activation phase (batched forward passes, no generation) on
100 harmful and 100 harmless prompts (benchmarks/data/heldout/prompts.jsonl) with
SmolLM2-135M-Instruct on the CPU, against the pass as it was before (each of the four prompt
groups in its own passes, in file order, every prompt's full tokens), in the same process; and,
with --whole, the whole `selfalign probe` command on the same prompts. Appends to
benchmarks/results/probe_speed.json.

    nice -n 10 python benchmarks/probe_speed.py --model /tmp/smollm2 --whole   # a folder from `selfalign save-model hf:smollm2`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from selfalign.evaluate.probes.base import ProbeContext, ProbeOptions
from selfalign.evaluate.probes.hooks import _hidden, _left_padded, decoder_layers, encode_prompts, last_token_activations
from selfalign.evaluate.probes.refusal import RefusalDirection
from selfalign.evaluate.probes.run import _load

HERE = Path(__file__).parent


def write_prompt_files(folder: Path, per_kind: int) -> tuple[Path, Path]:
    rows = [json.loads(line) for line in (HERE / "data/heldout/prompts.jsonl").read_text().splitlines() if line]
    paths = []
    for kind, harmful in (("harmful", True), ("harmless", False)):
        chosen = [r["prompt"] for r in rows if r["harmful"] is harmful][:per_kind]
        path = folder / f"{kind}.jsonl"
        path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in chosen))
        paths.append(path)
    return paths[0], paths[1]


@torch.inference_mode()
def previous_pass(model, prompts: list[list[int]], pad_id: int, batch_size: int) -> np.ndarray:
    """The activation pass as it was: file order, every prompt's full tokens, left-padded batches."""
    captured = {}
    handles = [layer.register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, _hidden(out)[:, -1].float()))
               for i, layer in enumerate(decoder_layers(model))]
    rows = []
    try:
        for start in range(0, len(prompts), batch_size):
            ids, mask = _left_padded(prompts[start : start + batch_size], pad_id, torch.device("cpu"))
            model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_(min=0), use_cache=False, logits_to_keep=1)
            rows.append(torch.stack([captured[i] for i in sorted(captured)], dim=1))
    finally:
        for h in handles:
            h.remove()
    return torch.cat(rows).numpy()


def steps_done_at(run: Path, started: float) -> dict[str, float]:
    """Seconds from the command's start (process start, imports and model load included) to each
    step's end, from the run store's item times."""
    with sqlite3.connect(run / "run.sqlite") as db:
        return {item_id.rsplit("/", 1)[-1]: round(updated - started, 1) for item_id, updated in db.execute("SELECT id, updated FROM items ORDER BY idx")}


def timed(fn):
    load, start = os.getloadavg()[0], time.perf_counter()
    value = fn()
    return value, {"seconds": round(time.perf_counter() - start, 3), "load_average_before": round(load, 2),
                   "load_average_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--per-kind", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--whole", action="store_true", help="also time the whole `selfalign probe` command")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="--whole: tokens per answer when measuring refusal")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="probe-speed-"))
    harmful, harmless = write_prompt_files(work, args.per_kind)
    spec = f"hf:{args.model}"
    model, tokenizer, pad_id = _load(spec, "cpu")
    probe = RefusalDirection(ProbeOptions(harmful=str(harmful), harmless=str(harmless), batch_size=args.batch_size))
    groups = [rows for sets in (probe.fit, probe.held) for rows in sets.values()]
    encoded = [encode_prompts(tokenizer, rows) for rows in groups]
    every = [ids for group in encoded for ids in group]

    before, t_before = timed(lambda: np.concatenate([previous_pass(model, g, pad_id, args.batch_size) for g in encoded]))
    now, t_now = timed(lambda: last_token_activations(model, every, pad_id, args.batch_size))
    _, t_step = timed(lambda: probe.run(ProbeContext(spec, model, tokenizer, pad_id, {}), "activations"))
    result = {
        "command": " ".join(["python benchmarks/probe_speed.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "niceness": os.nice(0),
        "prompts": len(every), "tokens": sum(map(len, every)),
        "previous_pass": t_before, "activation_pass": t_now, "activation_step": t_step,
        "speedup": round(t_before["seconds"] / t_now["seconds"], 2),
        "max_abs_difference": float(np.abs(before - now).max()),
        "note": "activation_pass: last_token_activations over all the prompts; activation_step: the probe's whole "
                "`activations` step (tokenising, the pass, the direction, AUROC and gap at every layer)",
    }
    if args.whole:
        out = work / "probe-run"
        command = [sys.executable, "-m", "selfalign.cli.main", "probe", "--model", spec, "--harmful", str(harmful), "--harmless",
                   str(harmless), "--out", str(out), "--max-new-tokens", str(args.max_new_tokens), "--quiet"]
        del model
        started = time.time()
        proc, t_whole = timed(lambda: subprocess.run(command, capture_output=True, text=True))
        if proc.returncode != 0:
            raise SystemExit(f"selfalign probe failed:\n{proc.stderr[-2000:]}")
        result["whole_command"] = {**t_whole, "command": "selfalign probe --model hf:MODEL --harmful H --harmless B --out OUT "
                                                         f"--max-new-tokens {args.max_new_tokens} --quiet",
                                   "step_done_at_seconds": steps_done_at(out, started)}
    print(json.dumps(result, indent=2))
    print(f"activation pass: {t_now['seconds']} s now, {t_before['seconds']} s as before: {result['speedup']}x")
    path = HERE / "results" / "probe_speed.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    path.write_text(json.dumps({"runs": [*runs, result]}, indent=2) + "\n")  # every run kept: the load says how far to trust one


if __name__ == "__main__":
    main()
