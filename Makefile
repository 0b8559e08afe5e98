# `make run` and `make test` create .venv themselves on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit format bench clean sandbox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-ml: pyproject.toml | $(BIN)/python
	@echo "Installing Atrium with every model framework into $(VENV): PyTorch (CPU build),"
	@echo "TensorFlow, XGBoost, ONNX Runtime, scikit-learn and Ray: about 3 GB on disk, a few"
	@echo "minutes on a good connection, once. Progress follows."
	$(BIN)/pip install --progress-bar on -e '.[ml]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-ml

# tenant models and files run only inside bubblewrap: install it when we can (root with
# apt-get), else stop with the one command that does
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } \
	  || { echo "Atrium needs bubblewrap: sudo apt-get install bubblewrap"; exit 1; }

# the ml extra (torch, TensorFlow) lets the registry validate every model format
run: sandbox $(VENV)/.installed-ml
	$(BIN)/atrium up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: sandbox lint typecheck
	$(BIN)/pytest

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.auth_overhead
	$(BIN)/python -m bench.quota_check
	$(BIN)/python -m bench.events
	$(BIN)/python -m bench.model_load
	$(BIN)/python -m bench.serving_overhead
	$(BIN)/python -m bench.batching
	$(BIN)/python -m bench.bulk_predict
	$(BIN)/python -m bench.multiplex

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
