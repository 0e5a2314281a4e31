"""The three generators against a running server, through the command line, as a user runs them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from clitools import selfalign

#: A few items each: these tests show that the generators finish against a real server, not speed.
GENERATORS = {
    "critique-revise": [],
    "matrix": ["--roles", "2", "--steps", "2"],
    "sandbox": ["--grid", "2", "--rounds", "1", "--raters", "2"],
}


def run_generator(name: str, spec: str, prompts: Path, out: Path, max_tokens: int = 64) -> dict:
    """Run generator `name`; returns its item counts. Exit 0 or 1 (some items failed) are both
    a finished run; anything else fails the test with the command's output."""
    proc = selfalign(name, "--model", spec, "--prompts", prompts, "--out", out, "--max-tokens", max_tokens,
                     "--quiet", *GENERATORS[name], check=False, timeout=1200)
    assert proc.returncode in (0, 1), f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "HTTP Request" not in proc.stderr  # no line per request on the console
    counts = json.loads((out / "summary.json").read_text())["items"]
    failures = selfalign("export", out, "--failures").stdout
    print(f"{name}: {counts['done']} done, {counts['failed']} failed")  # shown with pytest -rP
    assert counts["done"] * 3 >= 2 * (counts["done"] + counts["failed"]), f"{name}: {counts}\n{failures}"
    return counts


def structured_mode(run: Path) -> str | None:
    """The structured-output mode the run found out and kept."""
    with sqlite3.connect(run / "run.sqlite") as db:
        for (value,) in db.execute("SELECT value FROM calls"):
            data = json.loads(value)
            if "structured" in data:
                return data["structured"]
    return None
