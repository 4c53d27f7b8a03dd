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

.PHONY: install run test model lint check-deploy bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m cluster.demo

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

# The protocol model (tests/model/, docs/model.md): at least MODEL_SCHEDULES generated schedules,
# shrunk to a minimal counterexample on failure. Needs no database or Redis.
MODEL_SCHEDULES ?= 20000
model: install
	MODEL_SCHEDULES=$(MODEL_SCHEDULES) $(PY) -m tests.model.run

lint: install
	$(VENV)/bin/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) manage.py makemigrations --check --dry-run

check-deploy: install
	DJANGO_ENV=production SECRET_KEY=$$(openssl rand -hex 32) ALLOWED_HOSTS=dms.example.com \
		$(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf run staticfiles .pytest_cache
