# The README's two commands: `make run` (the app on its embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast install install-test llama-server system-deps test-system-deps services migrate lint clean

run: system-deps install migrate
	$(BIN)/histocr serve

test: test-system-deps install-test llama-server services
	$(BIN)/python -m pytest

# The inner loop (3–4 minutes on 2 cores): no worker, server, CLI run, browser or model
# (the `e2e` marker, tests/conftest.py), so no llama.cpp build either.
test-fast: test-system-deps install-test services
	$(BIN)/python -m pytest -m "not e2e"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests run a tiny Qwen2-VL through transformers. Qwen2-VL's processor needs torchvision,
# which imports only beside torch 2.14.1 here; both wheels lie on the machine's disk.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test,transformers]'
	touch $@

# A real llama.cpp server for the integration tests: its wheel is built once per machine
# (about 5.5 min on 2 cores) and cached under /var/cache/histocr; about 1 s when already there.
llama-server: install-test
	scripts/install-llama-server.sh $(VENV)

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

system-deps:
	scripts/system-deps.sh

test-system-deps:
	scripts/system-deps.sh --test

services:
	scripts/ensure-services.sh

migrate: install
	$(BIN)/histocr migrate

lint: install-test
	$(BIN)/ruff check app workers models tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
