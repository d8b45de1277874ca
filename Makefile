# IPC Lab: `make lab` opens the course, `make test` runs every test, `make test-quick` the
# fast part of it (for the edit-test loop). They create .venv and install the course first,
# with uv (from PyPI, into the venv): the packages pip would install but one (EXCLUDED), in
# 14 s instead of 35.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# JupyterHub's proxy, from npm, for tests/test_jupyterhub.py (skipped without it).
PROXY  := .hub/node_modules/.bin/configurable-http-proxy
PYTHONS ?= 3.10 3.11 3.12 3.13
# pytest-xdist workers: two more than the CPUs (much of the suite waits: for kernels, servers,
# browsers, timeouts). On 2 cores, 3 workers left the CPUs idle part of the time (pytest
# 473-589 s); 4 kept them busy (443-493 s). JOBS=0 runs everything in one process. Each
# worker gets its own /dev/shm, /dev/mqueue and /tmp (tests/isolate.py, needs root); where
# it cannot, the run is serial and says why.
JOBS   ?= $(shell echo $$(( $$(nproc) + 2 )))
PYTEST := $(BIN)/python -m pytest -n $(JOBS)
# The edit-test loop (about a minute): labkit's doctests and unit tests; no notebook, browser,
# JupyterHub, grader, sandbox, check-of-every-exercise run, or the puzzles' runs of hundreds
# of seeds.
QUICK  := labkit tests $(foreach t,browser jupyterhub constrained exercises mutants grade \
          sandbox many_users kernel release checks checks_bench checks_mq checks_pipes \
          checks_processes checks_race checks_shm checks_signals checks_sync \
          parallel_leak_checks instructor hidden graded_puzzles scaffold,--ignore=tests/test_$(t).py) \
          -k "not over_200_seeds and not at_least_1000_distinct_puzzles"

.PHONY: lab test test-quick test-browser lint test-all-pythons clean-venv

# Left out: rfc3987-syntax, which jupyter-events asks for (through jsonschema's
# format-nongpl extra) to check the "iri" format that no Jupyter schema uses. Importing
# jsonschema with it installed builds 38 parsers: 1.5 s of CPU (nine tenths of importing
# nbformat) in every process that reads a notebook or starts a Jupyter server.
EXCLUDED := rfc3987-syntax

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "IPC Lab needs Python 3.10 or newer; run: make PYTHON=python3.12 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.13"
	@printf '%s\n' $(EXCLUDED) > $(VENV)/excluded.txt
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	  --excludes $(VENV)/excluded.txt -e ".[test]"
	@# labkit's own modules byte-compiled too (an editable install is not), for every kernel,
	@# program and janitor that imports them where PYTHONDONTWRITEBYTECODE is set
	$(BIN)/python -m compileall -q labkit
	@touch $(STAMP)

$(PROXY):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-fund --no-audit --prefix .hub configurable-http-proxy@5; \
	else echo "note: npm not found, so no configurable-http-proxy: the JupyterHub test will be skipped"; fi

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_processes.ipynb

# ruff and mypy as configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Lint first: a finding fails `make test` before any test runs.
test: lint $(STAMP) $(PROXY)
	$(PYTEST)

test-quick: $(STAMP)
	$(PYTEST) $(QUICK)

# Every lesson in a real browser (Debian's chromium, driven by Playwright).
test-browser: $(STAMP)
	$(BIN)/python -m pytest -n 0 tests/test_browser.py

# The whole suite once per Python found (python3.X on the PATH, or under pyenv).
test-all-pythons:
	@for v in $(PYTHONS); do \
	  exe=""; \
	  for c in python$$v $$HOME/.pyenv/versions/$$v*/bin/python$$v; do \
	    if $$c -c 'import sys' >/dev/null 2>&1; then exe=$$c; break; fi; \
	  done; \
	  if [ -z "$$exe" ]; then echo "== Python $$v: SKIPPED (not installed)"; continue; fi; \
	  echo "== Python $$v: $$exe"; \
	  $(MAKE) --no-print-directory test PYTHON=$$exe VENV=.venv-$$v || exit 1; \
	done

clean-venv:
	rm -rf $(VENV) .venv-3.*
