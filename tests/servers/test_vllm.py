"""critique-revise, matrix and sandbox against vLLM's CPU build (`make test-servers`).

vLLM is started as its documentation says for an OpenAI-compatible server, with the two flags a
CPU machine and a small model need: --enforce-eager (no minutes of compilation at startup) and
structured outputs without free whitespace (a random or small model otherwise pads its JSON
with whitespace until max_tokens).
"""

from __future__ import annotations

import pytest

from .realserver import RealServer, free_port, questions, venv_python
from .generators import GENERATORS, run_generator, structured_mode

pytestmark = pytest.mark.servers

VLLM_FLAGS = ["--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
              "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def start_vllm(model_dir, name, log):
    python = venv_python(".venv-vllm", "test-servers")
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), *VLLM_FLAGS]
    return RealServer(command, port, log, env=VLLM_ENV).wait_ready()


@pytest.fixture(scope="module")
def vllm_tiny(tiny_head64, tmp_path_factory):
    server = start_vllm(tiny_head64, "tiny", tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_the_tiny_model(vllm_tiny, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:tiny@{vllm_tiny.url}", questions(tmp_path), out)
    if generator != "critique-revise":  # the one generator without structured calls
        assert structured_mode(out) == "structured_outputs"
