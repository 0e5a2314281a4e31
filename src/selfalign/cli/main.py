"""`selfalign COMMAND ...`: each command lives in its own module here with `register(subparsers)`."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from pathlib import Path

from selfalign.errors import DiskFull, UserError

# One module per command; each defines register(subparsers) and sets `func` on its parser.
COMMAND_MODULES = [
    "tiny_model",
    "save_model",
    "critique_revise",
    "export",
    "demo",
    "serve",
    "train",
    "matrix",
    "sandbox",
    "eval",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfalign",
        description="A language model aligns itself: generate alignment data, train on it, measure it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"selfalign.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `selfalign export RUN --failures | head`: the reader has had enough
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as other command-line tools end
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"error: {DiskFull(Path(exc.filename or '.').parent)}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
