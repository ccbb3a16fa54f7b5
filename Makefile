# optbench: `make run` (the main job) and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
RESULTS ?= results

.PHONY: run test test-unit reliability bench gpu-check lint clean install cluster cluster-up cluster-down apptainer browser image image-gpu services-up services-down

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

test: $(STAMP) cluster apptainer browser
	$(PY) -m pytest -q --durations=8

# The fast tests alone (no Slurm, image, browser or real jobs), for the edit-test loop; make test runs everything.
test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not slow"

# The fault-injection suite alone (make test runs it too): real kills, daemons stopped, a full disk, bad input.
reliability: $(STAMP) cluster apptainer
	$(PY) -m pytest -q --durations=8 tests/reliability

# Every benchmark runs, even after one fails: each records its goals (benchmarks/goals.py) in BENCH_GOALS, and
# its exit status is recorded after it; the table of every goal ends the run, and its exit status is make's
# (1 when a goal failed, a benchmark exited non-zero or recorded no goal).
BENCH_GOALS ?= $(RESULTS)/bench/goals.jsonl
BENCHMARKS := expand aggregate monitor report optim_step curvature newton preconditioning slurm problems container \
	tuning local vectorized

bench: export OPTBENCH_BENCH_GOALS = $(abspath $(BENCH_GOALS))
bench: $(STAMP) cluster apptainer
	@mkdir -p $(dir $(OPTBENCH_BENCH_GOALS)) && rm -f $(OPTBENCH_BENCH_GOALS)
	@for name in $(BENCHMARKS); do \
		echo "== benchmarks/bench_$$name.py"; \
		$(PY) benchmarks/bench_$$name.py; \
		$(PY) benchmarks/goals.py ran bench_$$name $$?; \
	done
	@echo "== goals ($(BENCH_GOALS))"
	$(PY) benchmarks/goals.py report $(OPTBENCH_BENCH_GOALS)

# For a lent GPU machine (not part of make test; needs only this project and torch with CUDA, no Slurm or
# Apptainer): optimizer families, determinism, vectorised throughput and peak GPU memory on the GPU, one table;
# exit status 1 when a check failed, 2 when torch sees no CUDA device. `GPU_CHECK=--device cpu --quick` runs it on
# a CPU. Where Apptainer and the GPU image (make image-gpu) are there too, the same check runs again inside it.
GPU_CHECK ?= --device cuda
GPU_IMAGE ?= images/optbench-gpu.sif
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py $(GPU_CHECK)
	@if command -v apptainer >/dev/null && test -f $(GPU_IMAGE); then \
		echo "== the same check inside $(GPU_IMAGE)"; \
		apptainer exec --nv $(GPU_IMAGE) python3 scripts/gpu_check.py $(GPU_CHECK); \
	else echo "(no apptainer or no $(GPU_IMAGE) here: the check inside the GPU image is left out)"; fi

# A real Slurm on this machine (2 nodes x 2 fake GPUs, accounting): needs root and apt.
cluster-up:
	bash scripts/cluster-up.sh

cluster-down:
	bash scripts/cluster-down.sh

# Start the local cluster unless a Slurm already answers; without root, Slurm tests fail.
cluster:
	@if sinfo -h >/dev/null 2>&1; then echo "Slurm is up: $$(sinfo -h -o '%D nodes, partition %P' | head -1)"; \
	elif [ "$$(id -u)" = 0 ]; then bash scripts/cluster-up.sh; \
	else echo "No Slurm here and not root: Slurm tests will fail (run make cluster-up as root)."; fi

# Apptainer: already there on clusters; installed from the workplace's recipe on a fresh machine (root).
apptainer:
	bash scripts/apptainer-up.sh

# Headless Chromium for the report's browser test: Debian's package, installed as root when missing.
browser: $(STAMP)
	bash scripts/browser-up.sh

# The CPU image (Debian + the local torch wheel + this tree), for tests, laptops and CPU partitions.
image: $(STAMP) apptainer
	$(VENV)/bin/optbench image build cpu --output images/optbench-cpu.sif

# The GPU image (Debian + PyPI's CUDA build of the same torch + this tree), for GPU partitions; not in make test
# (several GB from PyPI). Jobs run it with --nv, which brings in the host's NVIDIA driver.
image-gpu: $(STAMP) apptainer
	$(VENV)/bin/optbench image build gpu --output images/optbench-gpu.sif

# Long-running services (containers/singularity-compose.yml) as instances of the CPU image.
services-up: $(STAMP) apptainer
	test -f images/optbench-cpu.sif || $(MAKE) image
	mkdir -p results
	cd containers && ../$(VENV)/bin/singularity-compose up
	cd containers && ../$(VENV)/bin/singularity-compose ps

services-down: $(STAMP)
	cd containers && ../$(VENV)/bin/singularity-compose down

lint: $(STAMP)
	$(PY) -m ruff check orchestrator jobs analysis tests benchmarks

clean:
	rm -rf $(RESULTS) .pytest_cache
