"""`selfalign report RUN [RUN ...] [--out FILE.html] [--full]`: one page to look at runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfalign.report import build_report, run_notes
from selfalign.store.files import write_text_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML page showing runs (generators, evaluations, training)",
        description="Example: selfalign report runs/m1 runs/e1 --out report.html. The page needs no network: "
                    "open it from disk in any browser.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders: a generator's, an evaluation's or a training run's --out")
    p.add_argument("--out", default=None, help="the page to write (default: RUN/report.html for one run, report.html for several)")
    p.add_argument("--full", action="store_true", help="embed everything, MATRIX's raw simulation calls included")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    html = build_report(args.runs, full=args.full)  # every run is read before anything is written
    out = Path(args.out or (Path(args.runs[0]) / "report.html" if len(args.runs) == 1 else "report.html"))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, html)
    for note in (note for folder in args.runs for note in run_notes(folder)):
        print(note)
    print(f"report: {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB); open file://{out.resolve()}")
    return 0
