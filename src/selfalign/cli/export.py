"""`selfalign export RUN --format sft|preference|groups --to FILE`."""

from __future__ import annotations

import argparse

from selfalign.errors import UserError
from selfalign.methods import method_module
from selfalign.store import RunStore
from selfalign.store.export import write_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's records as training data (JSONL, Parquet or a datasets folder)",
        description="Example: selfalign export runs/cr1 --format preference --to data/cr1-prefs.jsonl",
    )
    p.add_argument("run", help="a run folder")
    p.add_argument("--format", default=None, help="sft, preference, groups, or a method's own (matrix: simulation)")
    p.add_argument("--to", default=None, help="FILE.jsonl, FILE.parquet, or a folder (datasets.save_to_disk)")
    p.add_argument("--failures", action="store_true", help="list the failed items and their reasons instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = RunStore.open_existing(args.run)
    try:
        if args.failures:
            failures = store.failures()
            for item_id, reason in failures:
                print(f"{item_id}\t{reason}")
            if not failures:
                print(f"no failures in {args.run}")
            return 0
        if not args.format or not args.to:
            raise UserError("export needs --format and --to (or --failures)")
        method = store.run_info().get("method", "")
        exporters = method_module(method).EXPORTS
        if args.format not in exporters:
            raise UserError(f"a {method} run exports {sorted(exporters)}, not {args.format!r}")
        exported = exporters[args.format](store.done_records())
        n = write_rows(exported.rows, args.to)
        failed = store.counts()["failed"]
        print(f"wrote {n} {args.format} rows to {args.to} ({failed} failed items excluded)")
        for reason, count in sorted(exported.excluded.items()):
            print(f"  excluded {count:6d}  {reason}")
    finally:
        store.close()
    return 0
