# The README's two commands: `make run` (the main job) and `make test` (the test suite).
# Both set everything up themselves on a fresh machine: virtual environment, Python packages,
# and, where apt-get exists and we are root, the Debian packages the data and tests use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned, so pip never swaps in a multi-GB build for another
# platform; override for a GPU machine, e.g. `make run TORCH_SPEC="torch==2.13.0" TORCH_INDEX=...`.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PRESET ?= quick
OUT ?= runs/reproduce-$(PRESET)
RUN_PACKAGES := dataset-fashion-mnist
TEST_PACKAGES := dataset-fashion-mnist chromium postgresql

.PHONY: run test lint venv venv-test system-deps-run system-deps-test bench clean

# `make run` installs what the run needs; `make test` adds the test extras on top.
$(VENV)/.installed-run: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

venv: $(VENV)/.installed-run
venv-test: $(VENV)/.installed-test

# Debian packages: installed only where apt-get exists and we are root; otherwise the tests that
# need them skip with a reason, and the data is downloaded instead.
define apt_install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: apt-get install$$missing failed; tests needing them will skip"; fi; \
	else echo "note: not root or no apt-get: skipping Debian packages ($(1))"; fi
endef

system-deps-run:
	$(call apt_install,$(RUN_PACKAGES))

system-deps-test:
	$(call apt_install,$(TEST_PACKAGES))

run: venv system-deps-run
	$(VENV)/bin/cnnlstm reproduce --preset $(PRESET) --out $(OUT)

# The suite runs on every core (pytest-xdist); the tests that start servers or process groups
# share one worker (tests/conftest.py, PROCESS_MODULES). The 20 slowest tests are listed at the end.
test: venv-test system-deps-test lint
	$(PY) -m pytest -q -n auto --dist loadgroup --durations=20

lint: venv-test
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: venv system-deps-run
	$(PY) benchmarks/data_load.py

clean:
	rm -rf $(VENV) runs .pytest_cache
