"""Helpers of the SELF-ALIGN tests: scripted models and the CLI in this process."""

from __future__ import annotations

import json

import pytest

from selfalign.cli.main import main


def write_rules(path, rules):
    path.write_text("".join(json.dumps(rule) + "\n" for rule in rules))
    return f"scripted:{path}"


@pytest.fixture
def cli(capsys):
    """cli(*args) -> (exit code, stdout + stderr) of `selfalign ARGS`, run in this process."""

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
