# make demo   set up everything, then run the nightly flow on the bundled demo calls (DEMO=ru|hu|all: other teams)
# make test   set up everything (and Chromium for the browser test), then run the whole test suite (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
export PYANNOTE_METRICS_ENABLED := 0
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test test-fast lint format i18n

setup:
	@bash scripts/setup.sh

# Which team's demo calls `make demo` runs: en (data/demo, the default), ru (data/demo-ru), hu
# (data/demo-hu) or all; each against its team's own script, into the same database.
DEMO ?= en

demo: setup
	@set -e; for team in $(if $(filter all,$(DEMO)),en ru hu,$(DEMO)); do \
	  case $$team in \
	    en) $(VENV)/bin/salescalls run data/demo --script data/scripts/demo.yaml ;; \
	    ru|hu) $(VENV)/bin/salescalls run data/demo-$$team --script data/scripts/demo-$$team.yaml ;; \
	    *) echo "error: DEMO must be en, ru, hu or all, not '$$team'" >&2; exit 2 ;; \
	  esac; \
	done

test:
	@bash scripts/setup.sh --with-browser
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# After changing a sentence the report or the CLI shows: merge it into the ru/hu catalogues
# (salescalls/locale) and compile them; a new sentence is left for a translator (msgstr "").
i18n:
	$(VENV)/bin/python scripts/i18n.py
