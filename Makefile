# make demo: install into .venv and run the main job; make test: install and run the tests.
# On a machine without an NVIDIA GPU, PyTorch's CPU build is installed first, so no CUDA
# packages are pulled. Elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu to fetch it.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
EXTRAS ?= serve,train,dev

.PHONY: demo test test-all install clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "no NVIDIA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/selfalign demo --out runs/demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

test-all: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m ""

clean:
	rm -rf $(VENV) runs
