"""`-q/--quiet`, the one option every command takes (cli.main adds it to those that do not
add it themselves; a generator's parser built on its own has it too)."""

from __future__ import annotations

import argparse

HELP = "no progress bars, the libraries' (weight loading, conversion, downloads) included"


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", default=False, help=HELP)
