"""`selfalign data-check FILE ...`: training rows that look poisoned (a rare n-gram of the
requests that predicts whether the answer refuses; one compliant answer repeated after unrelated
requests). With --strict, exit code 1 when some rows look poisoned (a gate before training).

    selfalign data-check data/train.jsonl --json flagged.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data-check",
        help="flag training rows that look poisoned (a trigger-like n-gram, duplicated answers)",
        description="Example: selfalign data-check data/train.jsonl --json flagged.json",
    )
    p.add_argument("data", nargs="+", help="training files (any format selfalign train reads)")
    p.add_argument("--refusal-phrases", default=None, help="a text file of refusal phrases, one a line (replaces the shipped list)")
    p.add_argument("--min-rows", type=int, default=3, help="an n-gram or an answer must be in at least this many rows")
    p.add_argument("--max-share", type=float, default=0.2, help="n-grams in more than this share of the rows are not rare")
    p.add_argument("--alpha", type=float, default=0.001, help="an n-gram's binomial tail must be below this")
    p.add_argument("--strict", action="store_true", help="exit with code 1 when some rows look poisoned")
    p.add_argument("--json", default=None, help="also write the findings and flagged rows to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfalign.evaluate.data_check import check

    report = check(args.data, refusal_phrases_file=args.refusal_phrases, min_rows=args.min_rows, max_share=args.max_share,
                   alpha=args.alpha)
    rows, flagged = report.rows, report.flagged
    refusals = sum(r.refuses for r in rows)
    print(f"{len(rows)} rows, {refusals} answers refuse ({refusals / len(rows):.0%}); {len(flagged)} rows look poisoned")
    for f in report.findings:
        p = f" p={f.p_value:.2g}" if f.p_value is not None else ""
        where = ", ".join(rows[i].where for i in f.rows[:5]) + (f" and {len(f.rows) - 5} more" if len(f.rows) > 5 else "")
        print(f"- {f.kind} {f.text[:80]!r}: {f.detail}{p}\n    {where}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rows": len(rows), "refusals": refusals,
            "findings": [{"kind": f.kind, "text": f.text, "detail": f.detail, "p_value": f.p_value, "rows": [rows[i].where for i in f.rows]}
                         for f in report.findings],
            "flagged": [{"where": rows[i].where, "reasons": reasons} for i, reasons in flagged.items()],
        }, indent=2), "utf-8")
        print(f"wrote {args.json}")
    return 1 if flagged and args.strict else 0

