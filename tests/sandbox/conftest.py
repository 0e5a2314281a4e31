"""Fixtures of the Sandbox tests (tiny_model_dir comes from tests/conftest.py)."""

import json

import pytest

from .society import QUESTIONS


@pytest.fixture
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in QUESTIONS))
    return path
