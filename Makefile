# The commands: `make run`, `make test`, and `make check` while you work. Everything
# else is a step of theirs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.test-installed

.PHONY: run test check lint format install install-test chromium clean bench bench-deps faults

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

install: $(INSTALLED)

$(TEST_INSTALLED): $(INSTALLED) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Azurite, the Azure Blob emulator the connector tests talk to, from npm.
AZURITE := .node/node_modules/.bin/azurite-blob
$(AZURITE):
	npm install --prefix .node --no-audit --no-fund --loglevel=error azurite@3.35.0

# axe-core, run inside the browser tests to check every page's accessibility.
AXE := .node/node_modules/axe-core/axe.min.js
$(AXE): $(AZURITE)
	npm install --prefix .node --no-audit --no-fund --loglevel=error axe-core@4.14.1

install-test: $(TEST_INSTALLED) chromium $(AZURITE) $(AXE)

# Browser tests drive Debian's Chromium (Playwright can't download its own here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: install
	$(PY) manage.py up

# dlt, the peer we measure against, lives in its own virtualenv.
DLT_VENV := .venv-dlt
$(DLT_VENV)/.installed: bench/requirements-dlt.txt
	test -x $(DLT_VENV)/bin/python || $(PYTHON) -m venv $(DLT_VENV)
	$(DLT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DLT_VENV)/bin/python -m pip install --quiet -r bench/requirements-dlt.txt
	touch $@

bench-deps: $(DLT_VENV)/.installed

# Not part of `make test` (a smoke run of each is): writes bench/RESULTS.md, the scale
# section (partitioned runs at 50,000,000 rows, lists, scheduler) last.
bench: install bench-deps
	$(PY) -m bench.run
	$(PY) -m bench.scale

# Not part of `make test` (a short version is): writes the table of docs/reliability.md.
faults: install-test
	$(PY) -m tests.faults

lint: $(TEST_INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(TEST_INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install-test bench-deps lint
	$(PY) -m pytest

# The fast inner loop, under 3 minutes: lint, then the tests that need no browser and no
# store's server (tests/conftest.py marks them) and aren't slow (the process, memory and
# benchmark tests take longer than all the rest). `make test` still runs them all.
check: $(TEST_INSTALLED) lint
	$(PY) -m pytest -m "not browser and not emulator and not slow"

clean:
	rm -rf var/test var/work
