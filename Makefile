# optbench: `make run` (the main job) and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
RESULTS ?= results

.PHONY: run test bench lint clean install

install: $(STAMP)

# torch first, pinned: a bare requirement would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/optbench launch sweep=smoke --results $(RESULTS)
	$(VENV)/bin/optbench aggregate smoke --results $(RESULTS)
	$(VENV)/bin/optbench report smoke --results $(RESULTS)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_expand.py
	$(PY) benchmarks/bench_aggregate.py

lint: $(STAMP)
	$(PY) -m ruff check orchestrator jobs analysis tests benchmarks

clean:
	rm -rf $(RESULTS) .pytest_cache
