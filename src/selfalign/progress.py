"""Progress on the console: our own bars, and the switch for the bars of the libraries we call.

    bar = progress_bar(120, "answers hf:smollm2", unit="item")
    bar.update(1); bar.set_postfix(failed=0); bar.close()

- On a terminal, a tqdm bar redrawn in place, named for what it counts.
- Without one (a log file, CI, a pipe), a line at each tenth of the work instead, since carriage
  returns make a log unreadable: `answers hf:smollm2: 30% (36/120 items) failed=0`. The
  libraries' own bars (weight loading, GGUF conversion, shard writing, hub downloads, datasets
  maps) are off there, as they redraw in place.
- `--quiet` (every command): no bar at all, theirs included (`configure(quiet=True)`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The environment variables that turn off huggingface_hub's (and so transformers') and datasets'
#: bars when set before those libraries are imported.
QUIET_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
STEPS = 10  # lines a bar prints without a terminal: one per tenth of its total

_quiet = False


def configure(quiet: bool) -> None:
    """Set once per command, before any model loads: `quiet` hides every bar; without a terminal
    the libraries' bars are off too (ours print a line per tenth)."""
    global _quiet
    _quiet = quiet
    if quiet or not on_terminal():
        silence_libraries()


def is_quiet() -> bool:
    return _quiet


def on_terminal() -> bool:
    return sys.stderr.isatty()


def silence_libraries() -> None:
    """Turn off the progress bars of transformers, huggingface_hub and datasets: through the
    environment for those not imported yet (and for subprocesses), through their own switches
    for those already imported; and any other tqdm bar (transformers' GGUF conversion makes a
    plain one), as TQDM_DISABLE would had it been set before tqdm was imported. Ours are not
    tqdm bars here: silent under --quiet, lines without a terminal."""
    os.environ.update(QUIET_ENVIRONMENT)
    _disable_tqdm()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def _disable_tqdm() -> None:
    from tqdm import std

    if getattr(std.tqdm.__init__, "selfalign_disabled", False):
        return
    init = std.tqdm.__init__

    def disabled(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    disabled.selfalign_disabled = True  # type: ignore[attr-defined]
    std.tqdm.__init__ = disabled  # type: ignore[method-assign]


def progress_bar(total: int, label: str, *, unit: str, initial: int = 0, enabled: bool = True) -> Any:
    """A bar counting `total` `unit`s of `label`: tqdm on a terminal, a line per tenth without
    one, nothing when not `enabled` or under --quiet. Use `update(n)`, `set_postfix(**values)`,
    `close()` and `n` as tqdm's."""
    if not enabled or _quiet:
        return LineProgress(total, label, unit=unit, initial=initial, silent=True)
    if not on_terminal():
        return LineProgress(total, label, unit=unit, initial=initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True)


class LineProgress:
    """tqdm's interface, printing a line to stderr each time the count passes a tenth of the total
    (and at the end), with the latest postfix values."""

    def __init__(self, total: int, label: str, *, unit: str, initial: int = 0, silent: bool = False) -> None:
        self.total, self.label, self.unit, self.n, self.silent = total, label, unit, initial, silent
        self.postfix = ""
        self._printed_step = self._step()

    def _step(self) -> int:
        return STEPS if self.total <= 0 else min(STEPS, self.n * STEPS // self.total)

    def update(self, n: int = 1) -> None:
        self.n += n
        step = self._step()
        if step > self._printed_step:
            self._printed_step = step
            self._print()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def _print(self) -> None:
        if self.silent:
            return
        percent = 100 if self.total <= 0 else self.n * 100 // self.total
        line = f"{self.label}: {percent}% ({self.n}/{self.total} {self.unit}s)"
        print(f"{line} {self.postfix}".rstrip(), file=sys.stderr, flush=True)
