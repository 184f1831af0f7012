# The jobs a user of deploy-manager has. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
EXAMPLES ?= examples

.PHONY: setup run stop test unit integration schemas-oldest-prefect lint format discover plan apply bench clean

# uv, then the locked environment in .venv, compiled to bytecode (ours too: it is installed
# editable). uv does not compile by default, and where PYTHONDONTWRITEBYTECODE is set Python
# never caches what it compiles: every `deploy-manager` process would compile pydantic, yaml
# and our modules from source again (~0.25 s of a 1000-file discover). Not a [tool.uv]
# setting: that makes every `uv run` check all of site-packages (+0.6 s each).
setup:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@uv sync --quiet --compile-bytecode
	@uv run --quiet python -m compileall -q control_plane flows blocks >/dev/null

# the main job on the embedded default: a local Prefect server (SQLite, PREFECT_HOME=.prefect-home)
# and one real reconcile of the bundled example repository; the server keeps running for the UI
run: setup
	uv run deploy-manager quickstart --home .prefect-home

# stop the server `make run` left running
stop:
	@uv run python -c "from pathlib import Path; from control_plane.server import stop_local_server; print('stopped' if stop_local_server(Path('.prefect-home')) else 'no server running')"

test: setup
	uv run pytest -q

unit: setup
	uv run pytest -q tests/unit

integration: setup
	uv run pytest -q tests/integration

# the schema tests against the oldest Prefect supported (the lock has the newest): discovery
# must produce what the INSTALLED Prefect would; EXPECT_PREFECT makes the run check its version
OLDEST_PREFECT ?= 3.8.8
schemas-oldest-prefect: setup
	EXPECT_PREFECT=$(OLDEST_PREFECT) uv run --with 'prefect==$(OLDEST_PREFECT)' \
		--with 'fastapi<0.151' --with 'sqlalchemy<2.1' \
		pytest -q tests/unit/test_parameters.py tests/unit/test_api_retries.py

lint: setup
	uv run ruff check .
	uv run ruff format --check .
	uv run lint-imports
	uv run mypy

format: setup
	uv run ruff format .
	uv run ruff check --fix .

discover: setup
	uv run deploy-manager discover $(EXAMPLES)

plan: setup
	uv run deploy-manager plan $(EXAMPLES)

# reconcile a repository against PREFECT_API_URL: make apply REPO=path/or/url
apply: setup
	uv run deploy-manager apply $(REPO)

bench: setup
	uv run python bench/discovery.py
	uv run python bench/reconcile.py
	uv run python bench/retries.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache
