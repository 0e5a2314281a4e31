"""Fixtures for the training tests: one tiny random Qwen2 model per session, small data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_fixtures import BAD, GOOD, MEDIUM, QUESTIONS, write_jsonl


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny random Qwen2 model (2 layers, hidden 64, ChatML), built once per session."""
    from selfalign.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("train-tiny"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("train-data")
    write_jsonl(d / "sft.jsonl", [
        {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": q},
                      {"role": "assistant", "content": GOOD}]}
        for q in QUESTIONS
    ])
    write_jsonl(d / "prefs.jsonl", [
        {"prompt": [{"role": "user", "content": q}],
         "chosen": [{"role": "assistant", "content": GOOD}],
         "rejected": [{"role": "assistant", "content": BAD}]}
        for q in QUESTIONS
    ])
    write_jsonl(d / "groups.jsonl", [
        {"prompt": q, "responses": [MEDIUM, GOOD, BAD][: 3 - (i % 2)], "ratings": [4, 7, 1][: 3 - (i % 2)]}
        for i, q in enumerate(QUESTIONS)
    ])
    write_jsonl(d / "sandbox.jsonl", [
        {"query": q, "responses": [BAD, GOOD], "scores": [2, 6]} for q in QUESTIONS
    ])
    return d


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model's matmuls are far smaller than thread start-up cost; on a shared 2-core
    machine two threads made each step ~100x slower. One thread, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
