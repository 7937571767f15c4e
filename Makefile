# goldenhour: `make run` for a demo on this machine, `make test` for the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
PRISM := tools/prism/node_modules/.bin/prism
OIDC_PROVIDER := tools/oidc/node_modules/oidc-provider/package.json
AXE := tools/axe/node_modules/axe-core/axe.min.js
CLOCKSHIFT := tools/clockshift/clockshift.so
PORT ?= 5000
export FLASK_APP := app.py

.PHONY: run serve test test-dates test-deps system-test-deps fuzz soak bench load restore-test lint clean safety-report

$(VENV)/.run-installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.run-installed
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

$(PRISM): tools/prism/package.json
	npm install --silent --no-audit --no-fund --no-package-lock --prefix tools/prism
	@touch $@

# The test identity provider (tests/services/oidc.py starts tools/oidc/provider.mjs).
$(OIDC_PROVIDER): tools/oidc/package.json
	npm install --silent --no-audit --no-fund --no-package-lock --prefix tools/oidc
	@touch $@

# axe-core for the accessibility browser tests (injected from disk, never from the internet).
$(AXE): tools/axe/package.json
	npm install --silent --no-audit --no-fund --no-package-lock --prefix tools/axe
	@touch $@

run: $(VENV)/.run-installed
	@scripts/system-deps.sh run
	$(FLASK) db upgrade
	$(FLASK) seed-demo --quiet
	@$(PY) scripts/run_demo.py --port $(PORT)

# The production shape on this machine: PostgreSQL, gunicorn, two schedulers (env only;
# see scripts/serve.py for PORT, WEB_WORKERS, SCHEDULERS, SERVE_PG_DIR, DATABASE_URL).
serve: $(VENV)/.run-installed
	@$(PY) scripts/serve.py

system-test-deps:
	@scripts/system-deps.sh test

# Debian packages first: Prism's and oidc-provider's installs need npm.
test-deps: system-test-deps $(VENV)/.test-installed $(PRISM) $(OIDC_PROVIDER) $(AXE)

# Then the tests that touch time once more, a year ahead in another time zone, so that
# the next test that only passes on the day it was written fails here.
test: test-deps $(CLOCKSHIFT)
	$(PY) -m pytest -n 2 --dist loadgroup
	scripts/test-dates.sh ci

# The fuzz tests (tests/fuzz) for FUZZ_SECONDS in all, shared by the tests, in rounds of
# fresh random examples (a wall-clock check after each round: a test may overrun by one
# round). `make test` runs them with a few fixed examples; see tests/fuzz/conftest.py.
FUZZ_SECONDS ?= 600
fuzz: test-deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -p no:cacheprovider -q tests/fuzz

# The fault tests (tests/faults) with each fault lasting SOAK_SECONDS: PostgreSQL down,
# the PACS and Twilio down for a minute. `make test` runs them for a few seconds each.
SOAK_SECONDS ?= 60
soak: test-deps
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest -p no:cacheprovider -q -s tests/faults

# The tests that touch time at each shifted date (clock changes, leap day, new year).
test-dates: test-deps $(CLOCKSHIFT)
	scripts/test-dates.sh all

# Moves the wall clock of the test processes (scripts/test-dates.sh).
$(CLOCKSHIFT): tools/clockshift/clockshift.c
	$(CC) -O2 -Wall -Wextra -shared -fPIC -o $@ $< -ldl

# The DCB0129 safety case: runs the tests docs/safety/hazards.toml names and renders the
# hazard log with their live results into var/safety-case.pdf (docs/safety/PLAN.md).
safety-report: test-deps
	$(PY) scripts/safety_report.py

# Every bench/bench_*.py; each rewrites its section of docs/BENCHMARKS.md (machine,
# date, command; see bench/run_benchmarks.py). Heavy: minutes each, ~10 for the load test.
bench: test-deps
	$(PY) bench/run_benchmarks.py

# The load test alone (bench/bench_load.py, locust) for LOAD_MINUTES; rewrites its section.
LOAD_MINUTES ?= 10
load: test-deps
	LOAD_MINUTES=$(LOAD_MINUTES) $(PY) bench/run_benchmarks.py --only bench_load.py

# Backups restore: pg_dump the database (DATABASE_URL, else `make serve`'s, else a demo
# one), restore it into a new cluster, and require `flask audit verify` to pass there.
restore-test: $(VENV)/.test-installed
	$(PY) scripts/restore_test.py

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) tools/prism/node_modules tools/oidc/node_modules tools/axe/node_modules .pytest_cache $(CLOCKSHIFT)
