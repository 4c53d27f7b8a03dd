# DMS Failover. `make run` for the demo, `make test` for the tests (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The tests need PostgreSQL (the database of record); this is the machine's local one.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
# The tests' own redis-server (started by the suite when not running), apart from the machine's:
# restart-fault tests restart it.
TEST_REDIS_URL ?= redis://127.0.0.1:6391/0
PYTEST_ARGS ?=
# Test processes (pytest-xdist): each runs its own control plane on its own Redis and database; the
# integration tests mostly wait on timers at the product's default timing (a whole run used ~0.6 of
# the 2 cores' CPU with two), so three overlap well on two cores: 14.1 → 10.5 min (docs/benchmarks.md,
# "The suite's time"). A file's tests stay together (their fixtures are per module).
TEST_WORKERS ?= 3
# The tests' fixed key for secrets at rest (a test value, never a production one): every process a
# test starts (workers, beat, manage.py) inherits it and reads what the others wrote.
TEST_FIELD_ENCRYPTION_KEYS ?= dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5LTA=

# Lock files: every dependency, transitive included, pinned with the hashes of all its files, made
# from requirements*.txt by `make lock`; installs take nothing else (--require-hashes).
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock"
# pip-audit reads advisories from PyPI's JSON API, per release: this URL answers only where it can.
AUDIT_PROBE := https://pypi.org/pypi/django/5.2.19/json
# The randomized fault campaign (docs/nemesis.md): root, its own database and Redis port.
SEED ?=
MINUTES ?= 3
CLUSTERS ?= 4
FAIL_ON ?=

.PHONY: install lock audit run test model lint check-deploy bench clean nemesis screenshots

$(VENV)/.installed: requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed

# After changing requirements*.txt or agent/requirements.txt; `uv pip compile --upgrade` for newer
# releases. The runtime and agent locks take the development lock's versions.
lock: install
	$(UV_COMPILE) requirements-dev.txt -o requirements-dev.lock
	$(UV_COMPILE) requirements.txt -c requirements-dev.lock -o requirements.lock
	$(UV_COMPILE) agent/requirements.txt -c requirements.lock -o agent/requirements.lock

# Known vulnerabilities in what is shipped (a release step, docs/operator-guide.md). Where the advisory
# service cannot be reached it says so and checks nothing (CI does not run it).
audit: install
	@if $(PY) -c "import urllib.request; urllib.request.urlopen('$(AUDIT_PROBE)', timeout=15)" 2>/dev/null; then \
		$(VENV)/bin/pip-audit --strict --disable-pip --require-hashes -r requirements.lock -r agent/requirements.lock; \
	else \
		echo "make audit: NOT CHECKED: pip-audit's advisory service (PyPI's JSON API) cannot be reached from"; \
		echo "this machine. Run 'make audit' where it can before a release (docs/operator-guide.md)."; \
	fi

run: install
	$(PY) -m demo

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) FIELD_ENCRYPTION_KEYS=$(TEST_FIELD_ENCRYPTION_KEYS) \
		$(PY) -m pytest -p tests.xdist_env $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

nemesis: install
	FIELD_ENCRYPTION_KEYS=$(TEST_FIELD_ENCRYPTION_KEYS) $(PY) -m tests.nemesis --minutes $(MINUTES) --clusters $(CLUSTERS) \
		$(if $(SEED),--seed $(SEED)) $(if $(FAIL_ON),--fail-on $(FAIL_ON))

# The protocol model (tests/model/, docs/model.md): at least MODEL_SCHEDULES generated schedules,
# shrunk to a minimal counterexample on failure. Needs no database or Redis.
MODEL_SCHEDULES ?= 20000
model: install
	MODEL_SCHEDULES=$(MODEL_SCHEDULES) $(PY) -m tests.model.run

# The pictures of the main pages in README.md (docs/screenshots/), from a seeded estate in a
# throwaway SQLite database; needs Debian's chromium. Nothing else is touched.
screenshots: install
	$(PY) -m tools.screenshots

# ruff; the models match their migrations; the import contracts (arrows point down, no cycle:
# pyproject.toml [tool.importlinter], docs/design.md §3); mypy on the engine apps (Django's settings
# are read by django-stubs' plugin, hence the database URL and key, never connected to).
lint: install
	$(VENV)/bin/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) FIELD_ENCRYPTION_KEYS=$(TEST_FIELD_ENCRYPTION_KEYS) \
		$(PY) manage.py makemigrations --check --dry-run
	PYTHONPATH=. $(VENV)/bin/lint-imports
	DATABASE_URL=$(TEST_DATABASE_URL) FIELD_ENCRYPTION_KEYS=$(TEST_FIELD_ENCRYPTION_KEYS) $(VENV)/bin/mypy

check-deploy: install
	DJANGO_ENV=production SECRET_KEY=$$(openssl rand -hex 32) ALLOWED_HOSTS=dms.example.com \
		FIELD_ENCRYPTION_KEYS=$$(openssl rand -base64 32 | tr '+/' '-_') \
		$(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf run staticfiles .pytest_cache
