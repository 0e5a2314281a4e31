import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # sample_runs.py

from sample_runs import HOSTILE, every_kind  # noqa: E402


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory):
    """Runs of every kind, made once per session by the real commands on scripted models."""
    return every_kind(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def hostile_runs(tmp_path_factory):
    """The same, with every text the models write hostile (markup, a script end, escapes)."""
    return every_kind(tmp_path_factory.mktemp("hostile"), HOSTILE)
