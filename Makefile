# Two commands set everything up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
PKI_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=
# Test processes (pytest-xdist); the machines here have two cores.
PYTEST_WORKERS ?= 2
# Browser tests use Debian's /usr/bin/chromium; 1 lets them apt-get install it when missing (as root).
PKI_BROWSER_INSTALL ?= 1

.PHONY: run test venv env lint bench loadtest clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || { echo "==> Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> Installing the Python packages of requirements.txt (a few minutes the first time; each line is one package)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@set -o pipefail; $(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt \
		| { grep --line-buffered -E '^(Collecting|Successfully installed)' || true; }
	@touch $(STAMP)
	@echo "==> Python packages installed"

env: venv
	@$(PY) -m pki_project.envfile

run: env
	@echo "==> Creating or updating the database tables"
	@set -o pipefail; $(PY) manage.py migrate --noinput | { grep --line-buffered -E '^  Applying|No migrations' || true; }
	@echo "==> Collecting the static files"
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "==> Bootstrapping the demo (organization, admin key, CAs)"
	@$(PY) manage.py bootstrap_demo
	@echo "==> Serving on http://$(HOST):$(PORT)/"
	@echo "    Sign in at http://$(HOST):$(PORT)/auth/login with the demo admin's API key printed above."
	@echo "    Keep the printed root CA password somewhere safe: it is shown only once and stored nowhere."
	PKI_COOKIE_SECURE=false $(VENV)/bin/gunicorn --config pki_project/gunicorn.conf.py \
		--bind $(HOST):$(PORT) --workers $(WORKERS)

test: venv
	$(VENV)/bin/ruff check .
	@echo "=== Test suite on SQLite ==="
	PKI_BROWSER_INSTALL=$(PKI_BROWSER_INSTALL) $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	@if $(PY) scripts/postgres_available.py "$(PKI_TEST_POSTGRES_URL)"; then \
		echo "=== Database tests again on PostgreSQL ($(PKI_TEST_POSTGRES_URL)) ==="; \
		PKI_BROWSER_INSTALL=$(PKI_BROWSER_INSTALL) PKI_TEST_DATABASE_URL="$(PKI_TEST_POSTGRES_URL)" $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); \
	else \
		echo "=== PostgreSQL skipped: no server answers at PKI_TEST_POSTGRES_URL ($(PKI_TEST_POSTGRES_URL)) ==="; \
	fi

lint: venv
	$(VENV)/bin/ruff check .

# Benchmarks (figures, not pass/fail): a table on stdout and bench-results.json. BENCH_QUICK=1: a short run.
# The peer suite (cfssl over HTTP; cfssl and wrk installed from Debian when missing) also runs on the
# PostgreSQL server at PKI_TEST_POSTGRES_URL when one answers. One suite: make bench BENCH_ARGS="--suite peer".
BENCH_ARGS ?=
bench: venv
	PKI_TEST_POSTGRES_URL="$(PKI_TEST_POSTGRES_URL)" $(PY) scripts/bench.py $(BENCH_ARGS)

# Load test (figures, not pass/fail; exit 1 on any error): a throw-away PostgreSQL database, Redis cache,
# gunicorn with LOAD_WORKERS workers, LOAD_SECONDS of mixed traffic on loopback; loadtest-results.json.
LOAD_SECONDS ?= 180
LOAD_WORKERS ?= 4
LOAD_CONCURRENCY ?= 8
loadtest: venv
	PKI_TEST_POSTGRES_URL="$(PKI_TEST_POSTGRES_URL)" $(PY) scripts/loadtest.py --managed --duration $(LOAD_SECONDS) \
		--workers $(LOAD_WORKERS) --concurrency $(LOAD_CONCURRENCY)

clean-venv:
	rm -rf $(VENV)
