"""Running the real `selfalign` command line from tests (tests/ is on sys.path via pyproject)."""

import subprocess
import sys


def selfalign(*args, check=True, timeout=300, **kwargs):
    """Run `python -m selfalign.cli.main ARGS`; fail the test with its output when it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "selfalign.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"selfalign {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
