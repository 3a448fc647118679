# Two commands on a fresh machine (Python 3.11+ and pip only):
#   make serve   install into .venv and start the server on 127.0.0.1:50051
#   make test    install into .venv (with dev tools) and run lint, types, generated-code check and tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 50051

.PHONY: serve test test-slow fuzz lint proto proto-check install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

serve: install
	$(BIN)/python server.py --port $(PORT) --profiles car,truck,foot

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m rpc.codegen --check
	$(BIN)/python -m pytest

test-slow: install-dev
	$(BIN)/python -m pytest -m slow

# the fuzz suite with 20,000 cases (make test runs 2,000); FUZZ_SEED=N for another seed
FUZZ_CASES ?= 20000
fuzz: install-dev
	ROUTEOPT_FUZZ_CASES=$(FUZZ_CASES) $(if $(FUZZ_SEED),ROUTEOPT_FUZZ_SEED=$(FUZZ_SEED)) \
		$(BIN)/python -m pytest tests/fuzz -q -s

lint: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

proto: install-dev
	$(BIN)/python -m rpc.codegen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
