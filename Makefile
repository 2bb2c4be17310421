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
#   CLUSTER_FLAGS CQAT_FLAGS PCQAT_FLAGS PRUNE_2BY4_FLAGS   (make compress-all: clustering,
#               CQAT, PCQAT and 2:4 pruning on top of everything `make all` makes)

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
# What a first look needs: batch 1, XNNPACK on, 1 and all threads, the quick timing
# (tftool/benchmark/timing.py TIMING, as the search's trials; the tool's defaults are
# benchmark_model's standard timing and the full sweep: `make benchmark-full`, or
# BENCHMARK_FLAGS= for the tool's defaults).
BENCHMARK_FLAGS ?= --batch_sizes=1 --xnnpack=on --timing=quick
PRUNE_FLAGS ?=
PQAT_FLAGS ?=
DISTILL_FLAGS ?=
CLUSTER_FLAGS ?=
CQAT_FLAGS ?=
PCQAT_FLAGS ?=
PRUNE_2BY4_FLAGS ?=
PYTEST_ARGS ?=

# The app side: MediaPipe Tasks in its own venv (mediapipe 1.x needs absl-py 2, tfmot pins
# absl-py 1), used by tftool/clients/mediapipe_classify.py and the tests that run it.
MEDIAPIPE_VENV ?= .venv-mediapipe
MEDIAPIPE_VERSION ?= 1.2.2
TFLITE_SUPPORT_VERSION ?= 0.4.4
# `make predict MODEL=exported/x.tflite IMAGES="a.png b.jpg" [TOP_K=3]`
MODEL ?=
IMAGES ?=
# `make import KERAS_MODEL=path` (+ IMPORT_FLAGS, e.g. --input_range=-1_1)
KERAS_MODEL ?=
IMPORT_FLAGS ?=
TOP_K ?= 5

# WORKDIR/<stage>/model.h5: the file target of a stage (see the graph below).
STAGE_MODEL = $(WORKDIR)/$(1)/model.h5
COMMON := --workdir=$(WORKDIR) $(if $(DATASET),--dataset=$(DATASET))
RUN := TFTOOL_SHARED_FLAGS=1 $(BIN)/

.PHONY: help install import train quantize prune pqat distill export micro benchmark benchmark-full all \
	test test-all clean \
	mediapipe predict cluster cqat pcqat prune-2by4 compress-all

# `make help`: the targets (their ## notes) and the main variables.
help: ## this list
	@echo "make TARGET [VARIABLE=value ...]   e.g. make all DATASET=folder:/data/pets EPOCHS=20"
	@echo
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(firstword $(MAKEFILE_LIST)) | \
	    sed -E 's/^([a-z0-9-]+):.*## (.*)/  \1\t\2/' | expand -t 20
	@echo
	@echo "Variables: DATASET (digits | folder:PATH | a TFDS name)  WORKDIR ($(WORKDIR))"
	@echo "  EXPORT_DIR ($(EXPORT_DIR))  EPOCHS (train)  QAT_EPOCHS  FLAGS (every stage)"
	@echo "  TRAIN_FLAGS QUANTIZE_FLAGS PRUNE_FLAGS PQAT_FLAGS DISTILL_FLAGS EXPORT_FLAGS"
	@echo "  BENCHMARK_FLAGS SEARCH_FLAGS (one stage each)  MODEL IMAGES (predict)  SEEDS (seed-sweep)"
	@echo "  KERAS_MODEL IMPORT_FLAGS (import)"

install: $(VENV)/.installed ## create .venv/ with tftool and its pinned stack (once; the tftool-* commands land in .venv/bin/)

# tflite-support brings the TFLite metadata schema (flatc-generated Python) that
# tftool/export/metadata.py imports. --no-deps: it declares protobuf<4, which TensorFlow 2.21
# cannot take; the one module we import needs only flatbuffers (see that module's docstring).
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[onnx]'
	$(BIN)/python -m pip install -q --no-deps tflite-support==$(TFLITE_SUPPORT_VERSION)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# `make import KERAS_MODEL=my_model.keras DATASET=folder:PATH`: your trained Keras 3 or
# tf_keras model as WORKDIR/float (tftool-import); `make all` then starts from it.
import: install ## your trained Keras model (KERAS_MODEL=path) as WORKDIR/float (tftool-import)
	$(RUN)tftool-import $(COMMON) --keras_model=$(KERAS_MODEL) $(FLAGS) $(IMPORT_FLAGS)

train: install ## train the float model into WORKDIR/float (tftool-train)
	$(RUN)tftool-train $(COMMON) $(if $(EPOCHS),--epochs=$(EPOCHS)) $(FLAGS) $(TRAIN_FLAGS)

quantize: install ## quantization-aware training of the float model -> WORKDIR/qat
	$(RUN)tftool-quantize $(COMMON) $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(QUANTIZE_FLAGS)

export: install ## convert every stage's model to EXPORT_DIR/*.tflite with model cards
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(EXPORT_FLAGS)

# Firmware sources for TensorFlow Lite Micro: EXPORT_DIR/micro/ for every integer variant
# WORKDIR has. It trains nothing: on a WORKDIR without a float model it stops with one line
# that names the command (a `make micro` after a quick start with --workdir=work must build
# that model, not train the default data set into ./workdir: WORKDIR=work EXPORT_DIR=...).
micro: install ## firmware sources for TensorFlow Lite Micro: EXPORT_DIR/micro/ (of WORKDIR's models)
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) --micro $(FLAGS) $(EXPORT_FLAGS)

benchmark: install ## accuracy, size and latency of every export -> EXPORT_DIR/report.md (first-look sweep)
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(BENCHMARK_FLAGS)

# The full sweep: threads 1 and all × batch 1 and 32 × XNNPACK on and off, standard timing.
benchmark-full: install ## the full benchmark sweep: threads x batch 1,32 x XNNPACK on/off, standard timing
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS)

prune: install ## magnitude pruning of the float model -> WORKDIR/pruned
	$(RUN)tftool-prune $(COMMON) $(FLAGS) $(PRUNE_FLAGS)

pqat: install ## sparsity-preserving QAT of the pruned model -> WORKDIR/pqat
	$(RUN)tftool-quantize $(COMMON) --from=pruned $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PQAT_FLAGS)

distill: install ## teacher-student distillation (+ its labels-only baseline) -> WORKDIR/student
	$(RUN)tftool-distill $(COMMON) --baseline $(FLAGS) $(DISTILL_FLAGS)

# The slower compression stages, outside `make all`: `make compress-all`.
cluster: install ## weight clustering of the float model -> WORKDIR/clustered
	$(RUN)tftool-cluster $(COMMON) $(FLAGS) $(CLUSTER_FLAGS)

cqat: install ## cluster-preserving QAT -> WORKDIR/cqat
	$(RUN)tftool-quantize $(COMMON) --from=clustered $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(CQAT_FLAGS)

pcqat: install ## sparsity- and cluster-preserving QAT -> WORKDIR/pcqat
	$(RUN)tftool-cluster $(COMMON) --from=pruned $(FLAGS) $(CLUSTER_FLAGS)
	$(RUN)tftool-quantize $(COMMON) --from=pruned_clustered $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PCQAT_FLAGS)

prune-2by4: install ## 2:4 structured pruning -> WORKDIR/pruned_2by4
	$(RUN)tftool-prune $(COMMON) --sparsity_m_by_n=2,4 $(FLAGS) $(PRUNE_2BY4_FLAGS)

# The whole graph as file targets: a stage runs only when its model is missing or older than
# its input's. Install is order-only (|), so reinstalling does not make every model stale.
STAGE_MODELS := $(foreach s,float qat pruned pqat student,$(call STAGE_MODEL,$(s)))
EXPORT_STAMP := $(EXPORT_DIR)/.export.stamp

$(call STAGE_MODEL,float): | install
	$(RUN)tftool-train $(COMMON) $(if $(EPOCHS),--epochs=$(EPOCHS)) $(FLAGS) $(TRAIN_FLAGS)

$(call STAGE_MODEL,qat): $(call STAGE_MODEL,float)
	$(RUN)tftool-quantize $(COMMON) $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(QUANTIZE_FLAGS)

$(call STAGE_MODEL,pruned): $(call STAGE_MODEL,float)
	$(RUN)tftool-prune $(COMMON) $(FLAGS) $(PRUNE_FLAGS)

$(call STAGE_MODEL,pqat): $(call STAGE_MODEL,pruned)
	$(RUN)tftool-quantize $(COMMON) --from=pruned $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PQAT_FLAGS)

$(call STAGE_MODEL,student): $(call STAGE_MODEL,float)
	$(RUN)tftool-distill $(COMMON) --baseline $(FLAGS) $(DISTILL_FLAGS)

$(call STAGE_MODEL,clustered): $(call STAGE_MODEL,float)
	$(RUN)tftool-cluster $(COMMON) $(FLAGS) $(CLUSTER_FLAGS)

$(call STAGE_MODEL,cqat): $(call STAGE_MODEL,clustered)
	$(RUN)tftool-quantize $(COMMON) --from=clustered $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(CQAT_FLAGS)

$(call STAGE_MODEL,pruned_clustered): $(call STAGE_MODEL,pruned)
	$(RUN)tftool-cluster $(COMMON) --from=pruned $(FLAGS) $(CLUSTER_FLAGS)

$(call STAGE_MODEL,pcqat): $(call STAGE_MODEL,pruned_clustered)
	$(RUN)tftool-quantize $(COMMON) --from=pruned_clustered $(if $(QAT_EPOCHS),--epochs=$(QAT_EPOCHS)) $(FLAGS) $(PCQAT_FLAGS)

$(call STAGE_MODEL,pruned_2by4): $(call STAGE_MODEL,float)
	$(RUN)tftool-prune $(COMMON) --sparsity_m_by_n=2,4 $(FLAGS) $(PRUNE_2BY4_FLAGS)

# Every stage, the slower compression ones too, then export and benchmark (not a file target:
# it always exports and benchmarks what is there).
COMPRESS_MODELS := $(foreach s,clustered cqat pruned_clustered pcqat pruned_2by4,$(call STAGE_MODEL,$(s)))
compress-all: $(STAGE_MODELS) $(COMPRESS_MODELS) ## everything `all` makes plus clustering, CQAT, PCQAT and 2:4 pruning
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(EXPORT_FLAGS)
	touch $(EXPORT_STAMP)
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(BENCHMARK_FLAGS) >/dev/null
	@cat $(EXPORT_DIR)/report.md

$(EXPORT_STAMP): $(STAGE_MODELS)
	$(RUN)tftool-export $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(EXPORT_FLAGS)
	touch $@

# stdout (the report) is dropped here: `all` prints report.md once, at the end.
$(EXPORT_DIR)/benchmark.json: $(EXPORT_STAMP)
	$(RUN)tftool-benchmark $(COMMON) --export_dir=$(EXPORT_DIR) $(FLAGS) $(BENCHMARK_FLAGS) >/dev/null

all: $(EXPORT_DIR)/benchmark.json ## train, quantize, prune, pqat, distill, export and benchmark; prints report.md
	@cat $(EXPORT_DIR)/report.md

mediapipe: $(MEDIAPIPE_VENV)/.installed ## the app-side MediaPipe venv the tests run exports in (.venv-mediapipe/)

$(MEDIAPIPE_VENV)/.installed:
	test -x $(MEDIAPIPE_VENV)/bin/python || $(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/python -m pip install -q --upgrade pip
	$(MEDIAPIPE_VENV)/bin/python -m pip install -q mediapipe==$(MEDIAPIPE_VERSION)
	touch $@

predict: install ## classify images: make predict MODEL=x.tflite IMAGES="a.png dir/"
	@test -n "$(MODEL)" -a -n "$(IMAGES)" || { echo 'usage: make predict MODEL=x.tflite IMAGES="a.png b.jpg"' >&2; exit 2; }
	$(BIN)/tftool-predict --tflite=$(MODEL) --top_k=$(TOP_K) $(IMAGES)

# The most accurate model within a budget (tftool-search): SEARCH_FLAGS holds the budgets and
# the space, e.g. make search SEARCH_FLAGS="--max_latency_ms=0.004 --trials=30". Uses the data
# settings `make train` recorded in WORKDIR/float (or DATASET).
SEARCH_FLAGS ?=
DASHBOARD_PORT ?= 8080
STORAGE ?= $(WORKDIR)/search/journal.log
.PHONY: search search-dashboard
search: install ## the most accurate model within a budget (tftool-search; SEARCH_FLAGS)
	$(RUN)tftool-search $(COMMON) --storage=$(STORAGE) $(FLAGS) $(SEARCH_FLAGS)

# Optuna's own web UI on the study's storage (a journal file, or a postgresql:// URL):
# http://127.0.0.1:$(DASHBOARD_PORT)/
search-dashboard: install ## Optuna's dashboard on the search's storage (DASHBOARD_PORT)
	$(BIN)/optuna-dashboard $(if $(filter %.log,$(STORAGE)),--storage-class JournalFileStorage) \
	    --port $(DASHBOARD_PORT) $(STORAGE)

# Two workers, one test file each (--dist loadfile keeps a file's module fixtures in one
# process): the suite is mostly single-threaded Python and process start-up. `make test` (what
# CI runs; about 10 minutes on 2 cores at most) leaves out the tests marked `slow`: benchmark-
# like runs whose checks a faster test also makes (docs/developers.md, "Tests"); `make
# test-all` runs those too.
# --no-loadscope-reorder: xdist (3.6 on) otherwise hands out the files with the most tests
# first, whatever tests/conftest.py's SLOW_FIRST ordered, and test_readme.py's 2 tests and
# test_model_pipeline.py's 5 (the two slowest files) started last, one worker idle meanwhile.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	--durations=15
test: $(VENV)/.installed-test $(MEDIAPIPE_VENV)/.installed ## the test suite without the `slow` tests (what CI runs)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed-test $(MEDIAPIPE_VENV)/.installed ## every test, the `slow` ones too
	$(PYTEST) $(PYTEST_ARGS)

clean: ## remove WORKDIR and the files in EXPORT_DIR
	rm -rf $(WORKDIR) .pytest_cache
	find $(EXPORT_DIR) -mindepth 1 ! -name .gitkeep -delete

# Benchmarks (minutes; not part of `make test`). BENCH_DATASET: a folder:PATH of
# real images for bench-train (python benchmarks/image_folder.py digits PATH --size=28
# --copies=5 writes one: 7,190 train digits).
BENCH_DATASET ?= folder:/tmp/tftool_bench_digits28
.PHONY: bench-memory bench-train seed-sweep bench-defaults bench-search bench-zoo bench-photo
# The development photos (CIFAR-10 JPEGs beside the repository, see ../shared/data/README.md):
# the compression defaults' study, the search's figures, the model table. Hours on 2 cores.
DEV_PHOTOS ?= /tmp/cifar10-dev
DEV_TAR ?= ../shared/data/cifar10-dev.tar
$(DEV_PHOTOS):
	tar -xf $(DEV_TAR) -C $(dir $(DEV_PHOTOS))
bench-defaults: install $(DEV_PHOTOS) ## compression defaults over 3 seeds on real photos (hours)
	for study in prune pqat cluster distill; do PYTHONPATH=. $(BIN)/python \
	    benchmarks/compress_defaults.py --dataset=folder:$(DEV_PHOTOS) --study=$$study \
	    --seeds=0,1,2 || exit 1; done
# The photo recipe's ablation (benchmarks/photo_recipe.py; docs/photo_recipe.md): one piece of
# the photo preset changed at a time on the development photos, then the default on the
# 30,000-photo set over 3 seeds. PHOTO_SEEDS / PHOTO_CONFIGS narrow it.
PHOTOS ?= /tmp/cifar10-photos
PHOTOS_TAR ?= ../shared/data/cifar10-photos.tar
PHOTO_SEEDS ?= 0
PHOTO_CONFIGS ?=
$(PHOTOS):
	tar -xf $(PHOTOS_TAR) -C $(dir $(PHOTOS))
bench-photo: install $(DEV_PHOTOS) $(PHOTOS) ## the photo recipe's ablation on real photos (an hour or more)
	PYTHONPATH=. $(BIN)/python benchmarks/photo_recipe.py --dataset=folder:$(DEV_PHOTOS) \
	    --seeds=$(PHOTO_SEEDS) $(if $(PHOTO_CONFIGS),--configs="$(PHOTO_CONFIGS)")
	PYTHONPATH=. $(BIN)/python benchmarks/photo_recipe.py --dataset=folder:$(PHOTOS) \
	    --seeds=0,1,2 --configs="default"
bench-search: install ## tftool-search's figures on digits and a 28x28 folder (about an hour)
	PYTHONPATH=. $(BIN)/python benchmarks/search_figures.py --dataset=digits
	test -d /tmp/tftool_digits28 || PYTHONPATH=. $(BIN)/python benchmarks/image_folder.py \
	    digits /tmp/tftool_digits28 --size=28 --copies=1
	PYTHONPATH=. $(BIN)/python benchmarks/search_figures.py --dataset=folder:/tmp/tftool_digits28
	PYTHONPATH=. $(BIN)/python benchmarks/search_figures.py --dataset=digits --mcu
bench-zoo: install ## every model builder on a 32x32 digits folder (params, MACs, size, p50)
	test -d /tmp/tftool_zoo32 || PYTHONPATH=. $(BIN)/python benchmarks/image_folder.py \
	    digits /tmp/tftool_zoo32 --size=32 --copies=2
	PYTHONPATH=. $(BIN)/python benchmarks/model_zoo.py --dataset=folder:/tmp/tftool_zoo32
# `make all` over SEEDS in separate workdirs: seed × variant accuracies with their intervals and
# the gate's verdicts (minutes per seed). SWEEP_ARGS: extra make arguments per run.
SEEDS ?= 0,1,2,3,4
SWEEP_TARGET ?= all
SWEEP_ARGS ?=
seed-sweep: install ## `make all` over SEEDS in separate workdirs, one table (benchmarks/seed_sweep.py)
	PYTHONPATH=. $(BIN)/python benchmarks/seed_sweep.py --seeds=$(SEEDS) \
	    --target=$(SWEEP_TARGET) --make_args="$(SWEEP_ARGS)"

bench-memory: install ## peak memory of export and benchmark vs the split size
	PYTHONPATH=. $(BIN)/python benchmarks/peak_memory.py

bench-train: install ## training throughput vs plain Keras model.fit
	test -d $(patsubst folder:%,%,$(BENCH_DATASET)) || PYTHONPATH=. $(BIN)/python \
	    benchmarks/image_folder.py digits $(patsubst folder:%,%,$(BENCH_DATASET)) --size=28 --copies=5
	PYTHONPATH=. $(BIN)/python benchmarks/train_throughput.py --dataset=$(BENCH_DATASET)
