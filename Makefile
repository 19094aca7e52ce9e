# `make demo` and `make test` set everything up in a local virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BACKENDS ?= tensorflow jax torch
# The PyTorch CPU build (the default wheel of a newer torch pulls CUDA).
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-floor lint format benchmark clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[tensorflow,jax,test]" "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-deps "robustbench==1.1.1"
	touch $(STAMP)

setup: $(STAMP)

# The docs need only the package sources (mkdocstrings reads them without
# importing TensorFlow or JAX) and the `docs` extra, kept by its own stamp.
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The CLI end to end on digits (offline): WEAT training with the energy-phase
# plot, AutoAttack, Langevin samples: 2-5 minutes on 2 CPU cores (docs/cli.md).
demo: $(STAMP)
	@mkdir -p runs && date +%s > runs/.demo-start
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-robust train --method weat --dataset digits --out runs/demo
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-robust evaluate runs/demo/model.keras --dataset digits --attack autoattack --out runs/demo/autoattack.json
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-robust generate runs/demo/model.keras --dataset digits --per-class 8 --out runs/demo/samples.png
	@echo "energy-phase plot: runs/demo/energy_phases.png"
	@echo "sample grid:       runs/demo/samples.png"
	@echo "make demo: the three commands took $$(( $$(date +%s) - $$(cat runs/.demo-start) )) s"

test: $(STAMP)
	@set -e; for backend in $(BACKENDS); do \
		echo "=== pytest with KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS); \
	done
	@$(MAKE) --no-print-directory test-floor

# The oldest Keras we support (pyproject's floor), on TensorFlow, for the
# tests that exercise the Keras internals our training step, resumption and
# tf.distribute code lean on. Its venv holds only that Keras and reads every
# other package from $(VENV).
FLOOR_KERAS ?= keras==3.11.0
FLOOR_VENV ?= .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.installed
FLOOR_TESTS ?= tests/models/test_train_step.py tests/models/test_robust_model.py \
	tests/callbacks tests/test_resume.py tests/distribution/test_tensorflow_distribute.py

$(FLOOR_STAMP): $(STAMP)
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps "$(FLOOR_KERAS)"
	echo "import site; site.addsitedir('$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')')" \
		> "$$($(FLOOR_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_main_venv.pth"
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	@echo "=== pytest with KERAS_BACKEND=tensorflow at $$($(FLOOR_VENV)/bin/python -c 'import keras; print("keras", keras.__version__)')"
	KERAS_BACKEND=tensorflow $(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup $(FLOOR_TESTS)

lint: $(STAMP)
	$(BIN)/ruff format --check keras_robust tests benchmarks examples
	$(BIN)/ruff check keras_robust tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format keras_robust tests benchmarks examples
	$(BIN)/ruff check --fix keras_robust tests benchmarks examples

benchmark: $(STAMP)
	$(BIN)/python benchmarks/train_step.py --backends $(BACKENDS)

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .ruff_cache build *.egg-info
