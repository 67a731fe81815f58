# make demo   set up everything, then run the nightly flow on the bundled demo calls
# make test   set up everything (and Chromium for the browser test), then run the whole test suite (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
export PYANNOTE_METRICS_ENABLED := 0
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test test-fast lint format

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/salescalls run data/demo

test:
	@bash scripts/setup.sh --with-browser
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
