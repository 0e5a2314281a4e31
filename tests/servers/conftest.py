"""Fixtures of the real-server tests (see realserver.py)."""

import pytest


@pytest.fixture(scope="session")
def tiny_head64(tmp_path_factory):
    """The tiny random model with head size 64, which vLLM's CPU attention supports."""
    from selfalign.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny64"), hidden_size=128, num_heads=2)
