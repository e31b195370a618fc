# promptrec: `make demo` and `make test` set up .venv on first use (see scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast test-slow test-integration test-lab test-all
setup: $(VENV)/.promptrec-setup
$(VENV)/.promptrec-setup: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/promptrec demo

test: setup
	$(PY) -m pytest -m "not slow and not integration" --durations=25

test-fast: setup
	$(PY) -m pytest -m "not slow and not integration and not vllm"

test-slow: setup
	$(PY) -m pytest -m slow

test-integration: setup
	$(PY) -m pytest -m integration

test-lab: setup  # the one-off studies' tests (lab/tests); not part of `make test`
	$(PY) -m pytest lab/tests

test-all: setup
	$(PY) -m pytest
