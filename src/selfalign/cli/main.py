"""`selfalign COMMAND ...`: each command lives in its own module here with `register(subparsers)`."""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import logging
import os
import sys
from pathlib import Path

from selfalign import __version__, progress
from selfalign.cli.quiet import add_quiet_option
from selfalign.errors import DiskFull, UserError
from selfalign.llm.errors import MissingExtra
from selfalign.redact import redact, redact_exception, redact_log_records

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
    "attack",
    "data_check",
    "probe",
    "self_instruct",
    "principles",
    "verbose",
    "self_align",
    "report",
]


class HelpFormatter(argparse.HelpFormatter):
    """Every option's line ends with its default, or says that it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required:
            return f"{text} (required)"
        quiet = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
        if not action.option_strings or isinstance(action, quiet) or "default" in text:
            return text  # (or the help says it in its own words)
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})"


#: Loggers that write one line per HTTP request; on the console only with -v.
PER_REQUEST_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "urllib3")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfalign",
        description="A language model aligns itself: generate alignment data, train on it, measure it.",
        epilog="Exit codes: 0 all done, 1 some items failed (the run keeps why), 2 bad usage or input.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages and every HTTP request")
    parser.add_argument("--version", action="version", version=f"selfalign {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter),
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"selfalign.cli.{name}").register(sub)
    for command in sub.choices.values():  # every command takes --quiet
        if "--quiet" not in command._option_string_actions:
            add_quiet_option(command)
    return parser


def setup_logging(verbose: bool) -> None:
    """Warnings and our own progress notes on the console, one short line each; with -v,
    everything, every HTTP request included, with time and source."""
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    redact_log_records()  # no API key in a log line, whoever logs it


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    progress.configure(quiet=args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (UserError, MissingExtra) as exc:  # MissingExtra: an optional dependency, with its install command
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `selfalign export RUN --failures | head`: the reader has had enough
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as other command-line tools end
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"error: {DiskFull(Path(exc.filename or '.').parent)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: its traceback is printed, without the secrets its text may quote
        redact_exception(exc)
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
