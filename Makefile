# promptrec: `make demo` and `make test` set up .venv on first use (see scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast test-slow test-all
setup: $(VENV)/.promptrec-setup
$(VENV)/.promptrec-setup: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/promptrec demo

test: setup
	$(PY) -m pytest -m "not slow"

test-fast: setup
	$(PY) -m pytest -m "not slow and not vllm"

test-slow: setup
	$(PY) -m pytest -m slow

test-all: setup
	$(PY) -m pytest
