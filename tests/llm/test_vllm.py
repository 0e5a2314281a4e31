"""The `vllm:` provider. vLLM needs a GPU; here only its absence is tested: a clear install hint."""

import importlib.util

import pytest

from selfalign.llm import MissingExtra, load_provider

needs_no_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vLLM is installed; this tests its absence"
)


@needs_no_vllm
def test_missing_vllm_names_the_install_command():
    with pytest.raises(MissingExtra, match=r"pip install 'selfalign\[vllm\]'"):
        load_provider("vllm:Qwen/Qwen2.5-0.5B-Instruct")


@needs_no_vllm
def test_missing_vllm_is_an_import_error_callers_can_catch():
    from selfalign.llm.vllm import VLLMProvider

    with pytest.raises(ImportError, match="'vllm' is needed"):
        VLLMProvider("some/model", gpu_memory_utilization=0.5)
