# Two commands do all the set-up on a fresh machine: `make test` and `make bench`.
PYTHON ?= python3.11
VENV   ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PY     := $(VENV)/bin/python
# Two stamps: `make bench` needs only bench and its dependencies; `make test` adds the test tools and Ray
# (the Ray backend's tests). Each target installs what it needs on top of the same venv.
STAMP      := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: test bench perf gpu-check clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(PY) -m pytest tests --ignore=tests/benchmarks

bench: $(STAMP)
	$(VENV)/bin/bench run quick

perf: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,compare]'
	$(PY) -m pytest tests/benchmarks --benchmark-enable -p no:randomly
	$(PY) -m bench.perf.report

# On a machine with a CUDA GPU (torch from the CUDA wheel index of your torch version, via TORCH_SPEC): the
# `cuda` tests, then a short paper-preset run, into reports/gpu-check.md (under 8 min). Without a GPU it
# says so and fails.
gpu-check: $(STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	CUBLAS_WORKSPACE_CONFIG=:4096:8 $(PY) -m bench.perf.gpu_check --out reports/gpu-check.md

clean:
	rm -rf $(VENV) build *.egg-info
