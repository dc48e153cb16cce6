# The two commands: `make run` and `make test` (which runs `make lint`'s checks too). Nothing else to install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test lint install install-dev bench clean

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Migrate, bootstrap the demo organisation, key and provider, then serve the
# hub with a Celery worker and beat beside it (hub/Procfile, run by honcho:
# hub/run.py). Ctrl-C or SIGTERM stops all three gracefully; if one of them
# exits, honcho stops the others. `exec`: no shell sits between make and honcho.
run: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py hub_bootstrap --base-url http://$(HOST):$(PORT)/v1
	exec env HUB_BIND=$(HOST):$(PORT) HUB_WORKERS=$(WORKERS) PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m hub.run

test: install-dev
	$(PY) -m pytest

# The gate alone (pyproject.toml), every check even when one fails; tests/test_gate.py and test_layers.py run
# the same in `make test`.
lint: install-dev
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/ruff format --check . || status=1; \
	$(VENV)/bin/mypy || status=1; \
	$(VENV)/bin/lint-imports || status=1; \
	exit $$status

bench: install-dev
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
