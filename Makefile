# The two commands a newcomer needs: `make pipeline` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install pipeline smoke test lint format

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# The three stages on the embedded default (tiny model, synthetic world, CPU), after the stand-ins
# for pretrained weights (objects, warmup), then evaluation.
pipeline: install
	$(BIN)/qwenvl-pipeline

smoke: install
	$(BIN)/qwenvl-smoke

# One pytest-xdist worker per core (TEST_WORKERS=0: one process), each on one thread (tests/conftest.py);
# a worker left idle takes tests queued for another (worksteal: a few tests take a minute or more).
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests
