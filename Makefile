# The two commands: `make run` and `make test` (which runs `make lint`'s checks too). Nothing else to install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test lint install install-dev chromium bench bench-scaleout bench-dashboard clean

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

test: install-dev chromium
	$(PY) -m pytest

# The browser tests (tests/browser.py) drive Debian's chromium, never a downloaded browser: install the package
# when it is missing (apt-get update only when the install fails without it). fonts-liberation: the metrics of
# the fonts pages name, for screenshots that look like the real thing; fonts-noto-cjk: the Japanese and Chinese
# pages' glyphs (without it their screenshots show boxes); the other recommends are for desktops.
CHROMIUM := /usr/bin/chromium
APT_INSTALL := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation \
	fonts-noto-cjk
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
chromium:
	@[ -x $(CHROMIUM) ] && [ -e $(CJK_FONT) ] && exit 0; \
	command -v apt-get >/dev/null || { echo "make test: the browser tests need $(CHROMIUM) (Debian's chromium)," \
		"and there is no apt-get to install it: install chromium by hand" >&2; exit 1; }; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else \
		echo "make test: the browser tests need $(CHROMIUM); run 'apt-get install chromium' as root" \
			"(or make test as root, or install sudo)" >&2; exit 1; fi; \
	echo "make test: installing Debian's chromium for the browser tests (apt-get)"; \
	$$sudo $(APT_INSTALL) || { $$sudo apt-get update -q && $$sudo $(APT_INSTALL); } || \
		{ echo "make test: apt-get could not install chromium (above)" >&2; exit 1; }; \
	[ -x $(CHROMIUM) ] || { echo "make test: apt-get installed chromium but there is no $(CHROMIUM)" >&2; exit 1; }

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

# Two hub instances on one PostgreSQL and Redis (bench/scaleout.py): DATABASE_URL and REDIS_URL must name scratch ones.
bench-scaleout: install-dev
	$(PY) bench/scaleout.py

# The dashboard at 1,000,000 usage records (bench/dashboard.py; a scratch database on 127.0.0.1:5432).
bench-dashboard: install-dev
	$(PY) bench/dashboard.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
