# huoke — the named tasks. CI calls these verbatim.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint fmt bench lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the locked dependencies

demo: $(STAMP)  ## the main job: bundled journeys, 3,000 leads, 60 simulated days
	$(BIN)/huoke demo

test: $(STAMP)  ## the whole suite (SQLite and PostgreSQL, real SMTP and NATS)
	$(BIN)/pytest -n 2 --dist worksteal

test-fast: $(STAMP)  ## a few minutes (about 4 here): SQLite only, without the crash, live-topology and demo tests (marked slow)
	$(BIN)/pytest -n 2 --dist worksteal -m "not postgres and not slow"

lint: $(STAMP)
	$(BIN)/ruff check engine projections demo tests bench
	$(BIN)/ruff format --check engine projections demo tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format engine projections demo tests bench
	$(BIN)/ruff check --fix engine projections demo tests bench

bench: $(STAMP)  ## ratios against raw library baselines measured in the same run
	$(BIN)/python -m bench.run

lock: ## re-resolve requirements.lock from pyproject.toml (needs network)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
