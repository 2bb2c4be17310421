# tftool: `make all` trains, quantizes, prunes, distills, exports and benchmarks on the built-in
# digits data set; `make test` runs the test suite. Both install the project into .venv first
# (once). `make all` runs only the stages whose model is missing or older than its input
# (file targets WORKDIR/<stage>/model.h5); the phony stage targets always call the tool, which
# itself skips a complete stage.
#
# Variables (override on the command line, e.g. `make train DATASET=folder:/data/pets`):
#   DATASET     digits (default), a TFDS catalog name, or folder:PATH
#   WORKDIR     stage folders (float/, qat/, ...)         EXPORT_DIR  deployable files
#   EPOCHS      training epochs of `train`                QAT_EPOCHS  fine-tuning epochs of `quantize`
#   FLAGS       extra flags handed to every stage run; a stage ignores (and names) those it lacks
#   TRAIN_FLAGS QUANTIZE_FLAGS EXPORT_FLAGS BENCHMARK_FLAGS  extra flags for one stage only
#   PRUNE_FLAGS PQAT_FLAGS DISTILL_FLAGS                    (prune, pqat, distill; distill
#               runs with --baseline so the benchmark shows what distillation bought)

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
# Half-second timing rows (the tool's own default is benchmark_model's 1 s): the default sweep
# times 8 settings of each of ~10 models, and `make all` must stay under 5 minutes on 2 cores.
# BENCHMARK_FLAGS= (empty) gives the tool's defaults.
BENCHMARK_FLAGS ?= --min_seconds=0.5 --warmup_seconds=0.25
PRUNE_FLAGS ?=
PQAT_FLAGS ?=
DISTILL_FLAGS ?=
PYTEST_ARGS ?=

COMMON := --workdir=$(WORKDIR) $(if $(DATASET),--dataset=$(DATASET))
RUN := TFTOOL_SHARED_FLAGS=1 $(BIN)/

.PHONY: install train quantize prune pqat distill export benchmark all test clean

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

prune: install
	$(RUN)tftool-prune $(COMMON) $(FLAGS) $(PRUNE_FLAGS)

pqat: install
	$(RUN)tftool-quantize $(COMMON) --from=pruned $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PQAT_FLAGS)

distill: install
	$(RUN)tftool-distill $(COMMON) --baseline $(FLAGS) $(DISTILL_FLAGS)

# The whole graph as file targets: a stage runs only when its model is missing or older than
# its input's. Install is order-only (|), so reinstalling does not make every model stale.
MODEL = $(WORKDIR)/$(1)/model.h5
STAGE_MODELS := $(foreach s,float qat pruned pqat student,$(call MODEL,$(s)))
EXPORT_STAMP := $(EXPORT_DIR)/.export.stamp

$(call MODEL,float): | install
	$(RUN)tftool-train $(COMMON) $(if $(EPOCHS),--epochs=$(EPOCHS)) $(FLAGS) $(TRAIN_FLAGS)

$(call MODEL,qat): $(call MODEL,float)
	$(RUN)tftool-quantize $(COMMON) $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(QUANTIZE_FLAGS)

$(call MODEL,pruned): $(call MODEL,float)
	$(RUN)tftool-prune $(COMMON) $(FLAGS) $(PRUNE_FLAGS)

$(call MODEL,pqat): $(call MODEL,pruned)
	$(RUN)tftool-quantize $(COMMON) --from=pruned $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PQAT_FLAGS)

$(call MODEL,student): $(call MODEL,float)
	$(RUN)tftool-distill $(COMMON) --baseline $(FLAGS) $(DISTILL_FLAGS)

$(EXPORT_STAMP): $(STAGE_MODELS)
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(EXPORT_FLAGS)
	touch $@

$(EXPORT_DIR)/benchmark.json: $(EXPORT_STAMP)
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(BENCHMARK_FLAGS)

all: $(EXPORT_DIR)/benchmark.json
	@cat $(EXPORT_DIR)/report.md

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(WORKDIR) .pytest_cache
	find $(EXPORT_DIR) -mindepth 1 ! -name .gitkeep -delete

# Benchmarks of issue 10 (minutes; not part of `make test`). BENCH_DATASET: a folder:PATH of
# real images for bench-train (python benchmarks/image_folder.py digits PATH --size=28
# --copies=5 writes one: 7,190 train digits).
BENCH_DATASET ?= folder:/tmp/tftool_bench_digits28
.PHONY: bench-memory bench-train
bench-memory: install
	PYTHONPATH=. $(BIN)/python benchmarks/peak_memory.py

bench-train: install
	test -d $(patsubst folder:%,%,$(BENCH_DATASET)) || PYTHONPATH=. $(BIN)/python \
	    benchmarks/image_folder.py digits $(patsubst folder:%,%,$(BENCH_DATASET)) --size=28 --copies=5
	PYTHONPATH=. $(BIN)/python benchmarks/train_throughput.py --dataset=$(BENCH_DATASET)
