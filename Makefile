# gaplab: `make demo` and `make test` do all the set-up on a fresh machine.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export MPLBACKEND ?= agg

.PHONY: setup demo test test-fast lint lab tensorboard seed-study bench clean-outputs

# Environment: venv with the exact pins, gaplab installed editable, the GPT-2
# ranks provisioned offline and the `gaplab` Jupyter kernel registered. The lock pins the
# optional extras too (gaplab[huggingface]: transformers, accelerate; gaplab[lightning]), so
# `make test` runs both trainer callbacks' tests and notebooks/07_stop_at_onset.ipynb.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name gaplab --display-name "gaplab (.venv)" >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)
	$(BIN)/gaplab tokenizer fetch

demo: setup
	$(BIN)/gaplab run params/quickstart.yaml

test: setup lint
	$(BIN)/python -m pytest

# ruff: the formatter and the linter (rules in pyproject.toml); CI runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff format --check lib tests benchmarks
	$(BIN)/ruff check lib tests benchmarks

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

# JupyterLab's app-level setting defaults (jupyter-settings/README.md): no news toast over the playground
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/gaplab.json

lab: setup
	@mkdir -p $(dir $(LAB_OVERRIDES)) && cp jupyter-settings/overrides.d/gaplab.json $(LAB_OVERRIDES)
	$(BIN)/jupyter lab --notebook-dir=. notebooks/

# TensorBoard over a study's runs (every phase and replicate writes tensorboard/seed-<seed>/ event files):
# `make tensorboard STUDY=quickstart`; without STUDY, every study under the outputs folder.
OUTPUTS ?= $(or $(GAPLAB_OUTPUTS),outputs)
tensorboard: setup
	@test -d "$(OUTPUTS)/$(STUDY)" || { echo "no study folder $(OUTPUTS)/$(STUDY): run 'gaplab run params/$(or $(STUDY),<study>).yaml' first"; exit 2; }
	$(BIN)/tensorboard --logdir "$(OUTPUTS)/$(STUDY)" --port $(or $(PORT),6006)

seed-study: setup
	$(BIN)/gaplab run params/seed_study.yaml

bench: setup
	$(BIN)/python benchmarks/bench_train.py

clean-outputs:
	rm -rf outputs/
