# `make demo` and `make test` set everything up in a local virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BACKENDS ?= tensorflow jax
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[tensorflow,jax,test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/python examples/digits_quickstart.py

test: $(STAMP)
	@set -e; for backend in $(BACKENDS); do \
		echo "=== pytest with KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile $(PYTEST_ARGS); \
	done

lint: $(STAMP)
	$(BIN)/ruff format --check keras_robust tests benchmarks examples
	$(BIN)/ruff check keras_robust tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format keras_robust tests benchmarks examples
	$(BIN)/ruff check --fix keras_robust tests benchmarks examples

benchmark: $(STAMP)
	@for backend in $(BACKENDS); do \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/train_step.py; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
