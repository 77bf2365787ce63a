# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_SECONDS ?= 60
STRESS_RUNS ?= 3
STRESS_PYTEST ?=

.PHONY: demo test test-stress lint unit integration bench chaos tools clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# promtool (Debian's prometheus package) checks the alert rules; installed where missing.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus package for promtool"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

demo: $(STAMP)
	$(VENV)/bin/hanzo-ml demo --seconds $(DEMO_SECONDS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) tools lint
	$(PY) -m pytest -q

# make test 3 times in a row while 2 CPU hogs keep both cores busy (~45 min; flakes show under load).
# Quick check: make test-stress STRESS_RUNS=1 STRESS_PYTEST="tests/unit/test_serving.py"
test-stress: $(STAMP) tools lint
	$(PY) -m bench.stress --runs $(STRESS_RUNS) -- $(STRESS_PYTEST)

unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

bench: $(STAMP)
	$(PY) -m bench

# the fault suite: kill -9 the worker while 100,000 orders flow, then check nothing was lost or counted twice
chaos: $(STAMP)
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) .hanzo
