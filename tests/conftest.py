"""Fixtures shared by every test folder."""

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny Qwen2 model in Hugging Face format (ends most turns), built once per test session."""
    from selfalign.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory):
    """The tiny model with purely random weights: it almost never ends a turn, so rows run to
    their token limit (long rows for batching tests)."""
    from selfalign.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("random"), chat_steps=0)


@pytest.fixture
def serve():
    """serve(app) -> a running BackgroundServer on a free 127.0.0.1 port, stopped after the test."""
    from selfalign.serve import BackgroundServer

    servers = []

    def start(app):
        server = BackgroundServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _cudnn_attention_as_torch_defaults():
    """torch's attention flags are process-wide: engines decoding in threads of an earlier test may
    leave cuDNN's attention off (llm/checkpoints.attention_without_cudnn), so each test starts
    from torch's default."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(True)
    yield
