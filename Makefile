# Everything a new machine needs, in one place. `make test` and `make serve` set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the release CI's machines carry as a local CPU wheel; the CUDA extension is
# built only where a CUDA torch and nvcc exist (see setup.py and docs/kernels.md).
TORCH ?= torch==2.13.0

.PHONY: setup test serve compile-kernels

$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,server]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

serve: setup
	$(VENV)/bin/shadowkv serve $(ARGS)

compile-kernels:
	bash .ci/compile_kernels.sh
