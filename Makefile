# tftool: `make all` trains, quantizes, exports and benchmarks on the built-in digits data set;
# `make test` runs the test suite. Both install the project into .venv first (once).
#
# Variables (override on the command line, e.g. `make train DATASET=folder:/data/pets`):
#   DATASET     digits (default), a TFDS catalog name, or folder:PATH
#   WORKDIR     stage folders (float/, qat/, ...)         EXPORT_DIR  deployable files
#   EPOCHS      training epochs of `train`                QAT_EPOCHS  fine-tuning epochs of `quantize`
#   FLAGS       extra flags handed to every stage run; a stage ignores (and names) those it lacks
#   TRAIN_FLAGS QUANTIZE_FLAGS EXPORT_FLAGS BENCHMARK_FLAGS  extra flags for one stage only

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATASET ?=
WORKDIR ?= workdir
EXPORT_DIR ?= exported
EPOCHS ?=
QAT_EPOCHS ?=
FLAGS ?=
TRAIN_FLAGS ?=
QUANTIZE_FLAGS ?=
EXPORT_FLAGS ?=
BENCHMARK_FLAGS ?=
PYTEST_ARGS ?=

COMMON := --workdir=$(WORKDIR) $(if $(DATASET),--dataset=$(DATASET))
RUN := TFTOOL_SHARED_FLAGS=1 $(BIN)/

.PHONY: install train quantize export benchmark all test clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

train: install
	$(RUN)tftool-train $(COMMON) $(if $(EPOCHS),--epochs=$(EPOCHS)) $(FLAGS) $(TRAIN_FLAGS)

quantize: install
	$(RUN)tftool-quantize $(COMMON) $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(QUANTIZE_FLAGS)

export: install
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(EXPORT_FLAGS)

benchmark: install
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(BENCHMARK_FLAGS)

all: train quantize export benchmark

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(WORKDIR) .pytest_cache
	find $(EXPORT_DIR) -mindepth 1 ! -name .gitkeep -delete
