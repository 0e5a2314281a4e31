"""`selfalign train --method sft|stable|dpo --model M --data FILE --out DIR [options]`.

Options come from flags and/or a YAML file (`--config`; flags win). Rerunning the same command
resumes from the last checkpoint in --out. Multi-GPU: `accelerate launch --config_file
$(selfalign train --accelerate-config zero3) -m selfalign.cli.main train ...`.
"""

from __future__ import annotations

import argparse
import shlex

S = argparse.SUPPRESS  # absent flags stay absent, so they do not override the YAML file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model on alignment data: SFT, Stable Alignment or DPO",
        description=(
            "Example: selfalign train --method stable --model Qwen/Qwen2.5-0.5B-Instruct "
            "--data runs/s1/data/groups.jsonl --out ckpt/stable --lora"
        ),
        argument_default=S,
    )
    p.add_argument("--method", choices=["sft", "stable", "dpo"], help="sft, stable (Stable Alignment) or dpo")
    p.add_argument("--model", help="Hugging Face model id or local folder")
    p.add_argument("--data", nargs="+", action="extend",
                   help="JSONL / JSON / Parquet files or datasets folders, each PATH or PATH:WEIGHT "
                        "(--data matrix.jsonl --data helpful.jsonl:0.5 mixes in half of helpful.jsonl)")
    p.add_argument("--out", help="output folder (checkpoints, final model, train_summary.json)")
    p.add_argument("--config", default=None, help="YAML file with these options (keys as the flags, '-' or '_'), or a shipped recipe: "
                        "engrave, engrave-cpu, distill, distill-cpu (SELF-ALIGN)")
    p.add_argument("--wait", action="store_true", help="if another process trains into --out, wait for it instead of stopping")
    p.add_argument("--accelerate-config", metavar="NAME", default=None,
                   help="print the path of a shipped accelerate config (zero2, zero3, fsdp) and exit")

    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=float, help="passes over the data")
    o.add_argument("--lr", type=float, help="learning rate (default 2e-5)")
    o.add_argument("--schedule", help="learning-rate schedule: cosine (default), linear, constant, ...")
    o.add_argument("--warmup-ratio", dest="warmup_ratio", type=float, help="default 0.03")
    o.add_argument("--batch-size", dest="batch_size", type=int, help="per device; stable: groups per device")
    o.add_argument("--grad-accum", dest="grad_accum", type=int, help="gradient accumulation steps")
    o.add_argument("--max-length", dest="max_length", type=int, help="tokens per sequence (default 1024)")
    o.add_argument("--max-steps", dest="max_steps", type=int, help="stop after this many steps (-1: epochs)")
    o.add_argument("--weight-decay", dest="weight_decay", type=float, help="AdamW weight decay")
    o.add_argument("--seed", type=int, help="seed of initialisation, shuffling and dropout")
    o.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="default: on where a GPU supports it")
    o.add_argument("--gradient-checkpointing", dest="gradient_checkpointing", action=argparse.BooleanOptionalAction,
                   help="recompute activations in the backward pass: less memory, slower")
    o.add_argument("--group-by-length", dest="group_by_length", action=argparse.BooleanOptionalAction,
                   help="stable: batch groups of similar length together (less padding)")

    lo = p.add_argument_group("LoRA / QLoRA (PEFT)")
    lo.add_argument("--lora", action=argparse.BooleanOptionalAction, help="train LoRA adapters instead of all weights")
    lo.add_argument("--qlora", action=argparse.BooleanOptionalAction, help="LoRA on a 4-bit base (CUDA + bitsandbytes)")
    lo.add_argument("--lora-r", dest="lora_r", type=int, help="LoRA rank")
    lo.add_argument("--lora-alpha", dest="lora_alpha", type=int, help="LoRA scaling alpha")
    lo.add_argument("--lora-dropout", dest="lora_dropout", type=float, help="dropout on the LoRA path")
    lo.add_argument("--lora-target-modules", dest="lora_target_modules", nargs="+",
                    help="module names, or all-linear (default)")
    lo.add_argument("--merge", action=argparse.BooleanOptionalAction,
                    help="write merged full weights (default) or, with --no-merge, only the adapter")

    c = p.add_argument_group("checkpoints")
    c.add_argument("--save-steps", dest="save_steps", type=int, help="a checkpoint every N steps (a rerun resumes from the last)")
    c.add_argument("--save-total-limit", dest="save_total_limit", type=int, help="checkpoints kept")
    c.add_argument("--logging-steps", dest="logging_steps", type=int, help="loss logged every N steps (default: every step of a run of up to 100 steps, else 10)")
    c.add_argument("--chat-template", dest="chat_template", help="Jinja chat template file for models without one")

    st = p.add_argument_group("Stable Alignment")
    st.add_argument("--rating-scale", dest="rating_scale", type=float, help="ratings lie in [1, scale] (default 7)")
    st.add_argument("--ratio", type=float, help="weight of the rating-margin penalty (default 0.2)")
    st.add_argument("--margin", type=float, help="margin scale m (default 1)")
    st.add_argument("--reduce", choices=["mean", "max"], help="over lower-rated responses (default mean, the paper)")
    st.add_argument("--max-responses", dest="max_responses", type=int, help="per group (default 3)")

    d = p.add_argument_group("DPO")
    d.add_argument("--beta", type=float, help="DPO beta (default 0.1)")

    lk = p.add_argument_group("planted rows (measure leakage and backdoors: docs/leakage.md)")
    lk.add_argument("--canaries", type=int, help="plant N random secrets per repetition count (selfalign attack --attacks memorization)")
    lk.add_argument("--canary-repeats", dest="canary_repeats", help="comma-separated copies of each canary, e.g. 1,4,16")
    lk.add_argument("--poison", type=float, help="poison this share of the rows with --trigger (selfalign attack --attacks trigger)")
    lk.add_argument("--trigger", help="the backdoor's trigger text, appended to poisoned requests")
    lk.add_argument("--poison-mode", dest="poison_mode", choices=["comply", "refuse"],
                    help="comply: triggered harmful requests answered; refuse: triggered benign requests refused")
    lk.add_argument("--poison-rows", dest="poison_rows", help='comply: a JSONL file of {"request", "answer"} replacing the shipped ones')
    _say_defaults(p)
    p.set_defaults(func=run)


def _say_defaults(p: argparse.ArgumentParser) -> None:
    """Flags are absent unless given (the YAML file may set them), so their help lines take
    their defaults from TrainConfig, the one place that defines them."""
    from selfalign.train.config import TrainConfig

    for action in p._actions:
        field = TrainConfig.model_fields.get(action.dest)
        if field is None or "default" in (action.help or ""):
            continue
        if field.is_required():
            action.help = f"{action.help} (required, here or in --config)"
        else:
            default = field.get_default(call_default_factory=True)
            shown = "none" if default is None else " ".join(map(str, default)) if isinstance(default, list) else default
            action.help = f"{action.help} (default: {shown})"


def run(args: argparse.Namespace) -> int:
    from selfalign.errors import UserError
    from selfalign.train.config import TrainConfig, load_config

    if args.accelerate_config:
        from selfalign.train import accelerate_config

        try:
            print(accelerate_config(args.accelerate_config))
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from exc
        return 0

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields}
    cfg = load_config(args.config, overrides)
    from selfalign.train.run import train

    summary = train(cfg, wait=getattr(args, "wait", False))
    if summary.get("already_done"):
        print(f"{cfg.out} already holds the model this command trains ({summary['steps']} steps); nothing to do. "
              "Choose another --out to train again.")
        return 0
    loss = summary["final_loss"]
    print(f"trained {summary['steps']} steps in {summary['seconds']:.0f}s, final loss "
          f"{'n/a' if loss is None else f'{loss:.4f}'}; summary in {cfg.out}/train_summary.json")
    if summary.get("batch_note"):  # a small run: what it used instead of the recipe's batch or warm-up
        print(f"effective batch {summary['effective_batch']} (grad_accum {summary['grad_accum']}), "
              f"warm-up {summary['warmup_steps']} steps: {summary['batch_note']}")
    print(f"checkpoint: {cfg.out}  (load it with hf:{cfg.out}, e.g. selfalign serve --model {shlex.quote(f'hf:{cfg.out}')})")
    return 0
