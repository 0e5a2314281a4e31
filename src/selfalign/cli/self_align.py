"""`selfalign self-align`: the four SELF-ALIGN stages in order (Sun et al., 2023), each in its
own subfolder of --out, each resumable.

    selfalign self-align --base meta-llama/Llama-3.1-8B --out runs/sa1 [--config self-align.yaml]

    OUT/1-self-instruct/   prompts.jsonl: red-teaming questions and self-instruct instructions
    OUT/2-principles/      principle-driven answers; engrave.jsonl, their sft export
    OUT/3-engrave/         the engraved model (train, recipe `engrave`)
    OUT/4-verbose/         the engraved model's verbose answers; distill.jsonl, their sft export
    OUT/5-distill/         the final model: the base trained on distill.jsonl (recipe `distill`)

Each stage runs the same code as its own command (self-instruct, principles, train, verbose),
so its options and files are those. A stage that finished is recorded in OUT/stages.json with
its counts and skipped on a rerun; an unfinished one resumes. The stages' options come from
--config (a YAML file of SelfAlignConfig's fields); a rerun with other options is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfalign.errors import UserError
from selfalign.methods.principles.stages import STAGES, STAGES_FILE
from selfalign.store.files import write_text_atomic

from .generate import add_ray_options

# What a generating stage hands to the next one; an empty file would only fail later, in training.
HANDED_ON = {"1-self-instruct": "prompts.jsonl", "2-principles": "engrave.jsonl", "4-verbose": "distill.jsonl"}
PLAIN_TEMPLATE = Path(__file__).resolve().parents[1] / "train" / "configs" / "user_assistant.jinja"


class SelfAlignConfig(BaseModel):
    """What `self-align --config FILE` may set; every field has the stage's own default."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model spec that generates stages 1-2 (default hf:BASE)")
    per_type: int = Field(20, ge=0)
    self_instruct: int = Field(100, ge=0)
    seed: int = 0
    raw: bool | None = None
    red_team_types: str | None = None
    seeds: str | None = None
    principles: str | None = None
    exemplars: str | None = None
    templates: str | None = None
    self_instruct_max_tokens: int = Field(512, ge=1)
    principles_max_tokens: int = Field(256, ge=1)
    principles_ngram_penalties: dict[int, float] = Field(default_factory=dict,
                                                         description="stage 2's n-gram penalties, e.g. {3: 4, 4: 8} for a small model")
    verbose_max_tokens: int = Field(512, ge=1)
    verbose_min_chars: int = Field(128, ge=1, description="shorter verbose answers are dropped (the paper: 128)")
    engrave: str = Field("engrave", description="training recipe name or YAML file of stage 3")
    distill: str = Field("distill", description="training recipe name or YAML file of stage 4's training")
    train: dict[str, Any] = Field(default_factory=dict, description="options of both trainings, e.g. max_steps")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "self-align",
        help="SELF-ALIGN stages 1-4 in one command: prompts, principled answers, engraving, verbose cloning",
        description="Example: selfalign self-align --base /tmp/tiny --out runs/sa1 --config self-align.yaml",
    )
    p.add_argument("--base", required=True, help="the base model: a Hugging Face id or folder (or smollm2)")
    p.add_argument("--out", required=True, help="folder of the stages' subfolders; rerunning resumes")
    p.add_argument("--config", default=None, help="YAML of the stages' options (per_type, self_instruct, engrave, train, ...)")
    p.add_argument("--cpu", action="store_true", help="the CPU trial recipes (engrave-cpu, distill-cpu) unless --config names others")
    p.add_argument("--device", default=None, help="hf: models: cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight at once")
    p.add_argument("--max-calls", type=int, default=64, help="model calls in flight at once")
    add_ray_options(p)  # stages 1, 2 and 4; the trainings run here (or under accelerate)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, cpu=args.cpu)
    out = Path(args.out)
    done = _finished(out, args.base, config)
    for name, argv in _stages(args, config, out):
        if name in done:
            print(f"== {name}: finished earlier, skipped")
            continue
        print(f"== {name}")
        code = _run_stage(argv)
        kept = _counts(out / name).get("kept", _counts(out / name).get("prompts"))
        if code != 0 and kept != 0:  # failed calls (or a failed training): a rerun resumes
            print(f"stage {name} did not finish (exit {code}); rerun the same command to resume it")
            return code
        if (empty := _kept_nothing(out / name, name)) is not None:
            print(empty)
            return 1
        done[name] = _counts(out / name)
        _save(out, args.base, config, done)
    final = out / "5-distill"
    print("\nstages:")
    for name, counts in done.items():
        print(f"  {name}: {json.dumps(counts)}")
    print(f"final checkpoint: {final}  (load it with hf:{final})")
    return 0


def load_config(path: str | None, *, cpu: bool = False) -> SelfAlignConfig:
    values: dict[str, Any] = {"engrave": "engrave-cpu", "distill": "distill-cpu"} if cpu else {}
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"--config {path}: no such file")
        try:
            loaded = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"--config {path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"--config {path}: expected a mapping of option: value")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    try:
        return SelfAlignConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"--config {path}: {'.'.join(map(str, err['loc']))}: {err['msg']} "
                        f"(options: {', '.join(SelfAlignConfig.model_fields)})") from exc


def _stages(args: argparse.Namespace, c: SelfAlignConfig, out: Path) -> list[tuple[str, list[str]]]:
    """Each stage as the command line of its own command."""
    model = c.model or f"hf:{args.base}"
    common = ["--seed", c.seed, "--concurrency", args.concurrency, "--max-calls", args.max_calls]
    common += ["--device", args.device] if args.device else []
    common += ["--quiet"] if args.quiet else []
    if args.ray is not None:
        common += ["--ray", *([] if args.ray == "local" else [args.ray]), "--actors", args.actors,
                   "--cpus-per-actor", args.cpus_per_actor, "--gpus-per-actor", args.gpus_per_actor]
    common += ["--templates", c.templates] if c.templates else []
    raw = [] if c.raw is None else ["--raw" if c.raw else "--no-raw"]
    prompts = out / "1-self-instruct" / "prompts.jsonl"
    stage1 = ["self-instruct", "--model", model, "--out", out / "1-self-instruct", "--per-type", c.per_type,
              "--self-instruct", c.self_instruct, "--max-tokens", c.self_instruct_max_tokens, *raw, *common, *_files(red_team_types=c.red_team_types, seeds=c.seeds)]
    stage2 = ["principles", "--model", model, "--prompts", prompts, "--out", out / "2-principles",
              "--max-tokens", c.principles_max_tokens, *raw, *common, *_ngram_penalties(c.principles_ngram_penalties),
              *_files(principles=c.principles, exemplars=c.exemplars),
              "&&", "export", out / "2-principles", "--format", "sft", "--to", out / "2-principles" / "engrave.jsonl"]
    engraved = out / "3-engrave"
    stage3 = ["train", "--config", c.engrave, "--model", args.base, "--data", out / "2-principles" / "engrave.jsonl",
              "--out", engraved, *_train_options(c, args.base)]
    stage4 = ["verbose", "--model", f"hf:{engraved}", "--prompts", prompts, "--out", out / "4-verbose",
              "--max-tokens", c.verbose_max_tokens, "--min-chars", c.verbose_min_chars, *common,
              "&&", "export", out / "4-verbose", "--format", "sft", "--to", out / "4-verbose" / "distill.jsonl"]
    stage5 = ["train", "--config", c.distill, "--model", args.base, "--data", out / "4-verbose" / "distill.jsonl",
              "--out", out / "5-distill", *_train_options(c, args.base)]
    return [(n, [str(a) for a in argv]) for n, argv in zip(STAGES, [stage1, stage2, stage3, stage4, stage5])]


def _files(**files: str | None) -> list[str]:
    return [a for name, path in files.items() if path for a in (f"--{name.replace('_', '-')}", path)]


def _ngram_penalties(penalties: dict[int, float]) -> list[str]:
    return ["--ngram-penalties", ",".join(f"{n}:{p:g}" for n, p in penalties.items())] if penalties else []


def _train_options(c: SelfAlignConfig, base: str) -> list[str]:
    options = []
    for key, value in c.train.items():
        flag = "--" + str(key).replace("_", "-")
        options += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    if "chat_template" not in c.train and not _has_chat_template(base):
        options += ["--chat-template", str(PLAIN_TEMPLATE)]  # a base model: User:/Assistant: turns
    return options


def _has_chat_template(base: str) -> bool:
    from selfalign.llm.checkpoints import locate
    from transformers import AutoTokenizer

    checkpoint = locate(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **checkpoint.options())
    except OSError as exc:
        raise UserError(f"--base {base}: cannot load its tokenizer: {exc}") from exc
    return bool(getattr(tokenizer, "chat_template", None))


def _run_stage(argv: list[str]) -> int:
    """One stage: one command, or two joined by "&&" (a generator, then its export)."""
    from .main import build_parser

    parser = build_parser()
    while argv:
        cut = argv.index("&&") if "&&" in argv else len(argv)
        args = parser.parse_args(argv[:cut])
        code = int(args.func(args) or 0)
        if code != 0:
            return code
        argv = argv[cut + 1 :]
    return 0


def _kept_nothing(folder: Path, name: str) -> str | None:
    """Why the next stage cannot start, when this stage passed nothing on; None otherwise."""
    if name not in HANDED_ON:
        return None
    handed_on = folder / HANDED_ON[name]
    if handed_on.is_file() and any(line.strip() for line in handed_on.read_text("utf-8").splitlines()):
        return None
    dropped = _counts(folder).get("dropped") or {}
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1])) or "none recorded"
    return (f"stage {name} kept nothing for the next stage: {handed_on} is empty (dropped: {reasons}; "
            f"see {folder / 'summary.json'}). Choose other options in --config (for a base model, raw: true; "
            "more tokens; more prompts) and a new --out.")


def _counts(folder: Path) -> dict[str, Any]:
    """What a finished stage produced, from its summary."""
    for name in ("summary.json", "train_summary.json"):
        if (folder / name).is_file():
            summary = json.loads((folder / name).read_text("utf-8"))
            keep = ("prompts", "red_team", "self_instruct", "dropped", "kept", "principles_cited", "items",
                    "steps", "final_loss", "seconds")
            return {k: summary[k] for k in keep if k in summary}
    return {}


def _finished(out: Path, base: str, config: SelfAlignConfig) -> dict[str, Any]:
    path = out / STAGES_FILE
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text("utf-8"))
    wanted = {"base": base, "config": config.model_dump(mode="json")}
    if {"base": saved.get("base"), "config": saved.get("config")} != wanted:
        raise UserError(f"{out} holds a self-align run with other settings (see {path}); rerun with the same "
                        "--base and --config to resume, or choose a new --out")
    return dict(saved["finished"])


def _save(out: Path, base: str, config: SelfAlignConfig, done: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"base": base, "config": config.model_dump(mode="json"), "finished": done}
    write_text_atomic(out / STAGES_FILE, json.dumps(data, indent=2))
