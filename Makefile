# The two commands: `make run` and `make test`. Nothing else to install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test install install-dev bench clean

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
# hub with a Celery worker and beat beside it. Ctrl-C stops all three.
run: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py hub_bootstrap --base-url http://$(HOST):$(PORT)/v1
	@trap 'kill 0' INT TERM; \
	$(VENV)/bin/celery -A hub worker --loglevel=warning --concurrency=2 & \
	$(VENV)/bin/celery -A hub beat --loglevel=warning & \
	$(VENV)/bin/gunicorn hub.asgi:application -k uvicorn_worker.UvicornWorker \
		--workers $(WORKERS) --bind $(HOST):$(PORT) --graceful-timeout 30 --access-logfile - & \
	wait

test: install-dev
	$(PY) -m pytest

bench: install-dev
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
