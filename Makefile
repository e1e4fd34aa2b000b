# Two commands on a fresh machine: `make run` (install, migrate, demo data, serve) and
# `make test` (install, run the whole suite). Settings come from the environment (README).
PYTHON ?= python3
LOCK   := requirements.lock
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install repair-venv lock run web test bench bench-cluster lint format migrate demo worker clean

# Installs come from the lock file (exact versions of everything, dev tools included); the
# project itself is installed editable on top, without resolving anything again.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; run make with PYTHON=python3.X")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: repair-venv $(STAMP)

# A .venv whose Python or pip is gone (Python upgraded, a half-finished install) is made again.
repair-venv:
	@if [ -d $(VENV) ] && ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		echo "$(VENV) is broken (its Python or pip is gone): making it again"; rm -rf $(VENV); fi

# Refresh the lock after changing dependencies in pyproject.toml (then `make install`).
lock:
	test -x $(BIN)/pip-compile || $(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --no-emit-index-url \
		--no-emit-find-links --output-file $(LOCK) pyproject.toml

migrate: install
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) demo load

run: demo
	$(FLASK) serve --host $(HOST) --port $(PORT)

worker: install
	$(FLASK) worker

# The production web server: gunicorn with ./gunicorn.conf.py (DATABASE_URL and REDIS_URL set).
web: install
	$(BIN)/gunicorn wsgi:app

# Every issue-11 figure in one run (bench/run.py); e.g. BENCH_ARGS=--quick. It drops and migrates
# $(BENCH_DATABASE_URL)'s schema and flushes $(BENCH_REDIS_URL): never point them at real data.
BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/bench
BENCH_REDIS_URL    ?= redis://127.0.0.1:6379/9
bench: install
	$(BIN)/python bench/run.py --database-url $(BENCH_DATABASE_URL) \
		--redis-url $(BENCH_REDIS_URL) $(BENCH_ARGS)

# Two gunicorn nodes and two RQ workers on one PostgreSQL and Redis (bench/cluster.py).
bench-cluster: install
	$(BIN)/python bench/cluster.py --database-url $(BENCH_DATABASE_URL) \
		--redis-url $(BENCH_REDIS_URL) $(BENCH_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) instance
