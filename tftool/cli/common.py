"""What every entry point shares: the one table of flags, the one-line error exit, and the
helpers that turn flags into library arguments.

Flags: every flag of every entry point is defined from FLAG_SPECS, so a flag name means one
thing everywhere (tests/test_cli.py checks it); an entry point lists the names it takes and
its own defaults. Flags are defined when the entry point runs (`main`), not on import, so
tests can define each entry point's flags into a fresh FlagValues.

Errors: libraries raise UserError (or OSError for the file system); `run` turns each into one
line `tftool-<tool>: error: ...` on stderr and exit status 2, with no traceback.
"""
import dataclasses
import errno
import os
import re
import sys
from typing import Any, Callable, Optional, Sequence

from tftool import UserError, stage_runner, stages

from absl import app, flags, logging

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Spec:
    """One flag: absl kind ("string", "integer", "float", "boolean", "enum", "list"),
    default, help text, enum values, and a validator (predicate, message)."""
    kind: str
    default: Any
    help: str
    enum_values: Optional[Sequence[str]] = None
    check: Optional[Callable[[Any], bool]] = None
    message: str = ""


def _auto_or(value, test):
    """A validator for a flag that takes "auto" or a number passing `test`."""
    if value == "auto":
        return True
    try:
        return test(float(value))
    except (TypeError, ValueError):
        return False


def number_or_auto(name):
    """--name's value: "auto", or the number it gives (float)."""
    value = FLAGS[name].value
    return value if value == "auto" else float(value)


def _positive_ints(values):
    try:
        return bool(values) and all(int(v) >= 1 for v in values)
    except ValueError:
        return False


# The models and schedules are named here rather than imported, so that `--help` needs no
# TensorFlow; tests/test_cli.py checks these tuples against the libraries' own.
MODEL_NAMES = ("small_cnn", "mobilenet_v2", "resnet8", "mobilenet_v3_small",
               "mobilenet_v3_large", "efficientnet_lite0", "airbench")
SCHEDULES = ("constant", "cosine", "cosine_warmup", "exponential", "piecewise")
STRATEGIES = ("auto", "mirrored", "one_device", "multi_worker")
OPTIMIZERS = ("adam", "sgd")
AUGMENTATIONS = ("geometric", "flip_shift")
PRESET_NAMES = ("auto", "digits", "photo")

FLAG_SPECS = {
    # ---- where and what data (every entry point) ----
    "workdir": Spec("string", "workdir", "Folder of the stage folders (float/, qat/, ...)."),
    "dataset": Spec("string", None, "digits, a TFDS catalog name (mnist, cifar10, ...) or "
                    "folder:PATH. Default: digits for train; the float model's data set for "
                    "later stages."),
    "data_dir": Spec("string", None, "TFDS data directory (default: TFDS's own)."),
    "manual_dir": Spec("string", None, "TFDS manual download directory (catalog data sets)."),
    "channels": Spec("integer", None, "Force 1 (grayscale) or 3 (RGB) input channels.",
                     check=lambda v: v in (None, 1, 3), message="--channels must be 1 or 3"),
    "image_size": Spec("integer", None, "Square input size in pixels. Default: the data's "
                       "own size (a folder: the most common size of its train images), the "
                       "longer side capped at 224 keeping the aspect ratio; tftool-train prints "
                       "it first and records it.",
                       check=lambda v: v is None or v >= 4,
                       message="--image_size must be ≥ 4 pixels"),
    "validation_fraction": Spec("float", 0.1, "Share of train held out as the validation split "
                                "(stratified by class, fixed seed) when the data set has none "
                                "of its own (TFDS validation beside test; folder:PATH/"
                                "validation/). The validation split chooses (selective int8, "
                                "--target_sparsity=auto, search); the test split reports. "
                                "Recorded by tftool-train; later stages inherit it.",
                                check=lambda v: v is None or 0.0 < v <= 0.5,
                                message="--validation_fraction must be in (0, 0.5], e.g. 0.1"),
    "test_fraction": Spec("float", 0.2, "Share of a folder: data set held out as the test split "
                          "(stratified by class, fixed seed) when it has no test/ subfolder "
                          "(PATH/<class>/ alone, or PATH/train/ without test/). Recorded by "
                          "tftool-train; later stages inherit it.",
                          check=lambda v: v is None or 0.0 < v <= 0.5,
                          message="--test_fraction must be in (0, 0.5], e.g. 0.2"),
    "download": Spec("boolean", True, "Allow TFDS to download a catalog data set."),
    "skip_corrupt": Spec("boolean", False, "folder: data sets: skip images that cannot be "
                         "decoded (and say how many) instead of stopping at the first one. "
                         "Later stages inherit it."),
    # ---- training (every stage that trains; defaults per stage) ----
    "epochs": Spec("integer", 10, "Training epochs (≥ 1). tftool-distill: default the epochs "
                   "its teacher was trained (30 for a teacher it trains itself).",
                   check=lambda v: v is None or v >= 1, message="--epochs must be ≥ 1"),
    "per_replica_batch_size": Spec("integer", 64, "Batch per replica; the global batch is "
                                   "this × replicas.", check=lambda v: v is None or v >= 1,
                                   message="--per_replica_batch_size must be ≥ 1"),
    "learning_rate": Spec("float", 1e-3, "Peak learning rate (> 0).",
                          check=lambda v: v is None or v > 0,
                          message="--learning_rate must be > 0"),
    "lr_schedule": Spec("enum", "cosine", "Learning-rate schedule.", enum_values=SCHEDULES),
    "warmup_epochs": Spec("float", 0.0, "Linear warm-up (cosine_warmup), epochs.",
                          check=lambda v: v is None or v >= 0,
                          message="--warmup_epochs must be ≥ 0"),
    "optimizer": Spec("enum", "adam", "Optimizer.", enum_values=OPTIMIZERS),
    "weight_decay": Spec("float", 0.0, "Decoupled weight decay (0: none).",
                         check=lambda v: v is None or v >= 0,
                         message="--weight_decay must be ≥ 0"),
    "momentum": Spec("float", 0.9, "SGD's Nesterov momentum, in [0, 1); Adam ignores it.",
                     check=lambda v: v is None or 0.0 <= v < 1.0,
                     message="--momentum must be in [0, 1), e.g. 0.9"),
    "label_smoothing": Spec("float", 0.0, "Label smoothing ε of the cross-entropy (Szegedy "
                            "et al. 2016), in [0, 1); 0: none.",
                            check=lambda v: v is None or 0.0 <= v < 1.0,
                            message="--label_smoothing must be in [0, 1), e.g. 0.2"),
    "use_ema": Spec("boolean", False, "Keep an exponential moving average of the weights "
                    "(Keras optimizers' use_ema) and end training with it."),
    "ema_momentum": Spec("float", 0.99, "--use_ema: the average's decay per step, in (0, 1).",
                         check=lambda v: v is None or 0.0 < v < 1.0,
                         message="--ema_momentum must be in (0, 1), e.g. 0.99"),
    "augmentation": Spec("enum", "geometric", "Augmentation policy when --augment is on: "
                         "geometric (translation ±10%, rotation, zoom, contrast, black fill: "
                         "the digits recipe) or flip_shift (a 2-px shift with reflected "
                         "borders: the photo recipe; flips come from --hflip).",
                         enum_values=AUGMENTATIONS),
    "preset": Spec("string", "auto", "Training recipe (tftool/train/presets.py): photo "
                   "(airbench network, flip + shift, Nesterov SGD, label smoothing: RGB "
                   "photos), digits (small_cnn, Adam, geometric augmentation: the built-in "
                   "digits and anything a mirror changes) or auto (photo for 3-channel images "
                   "of ≥ 32 px whose classes survive a mirror, else digits). Every flag given "
                   "replaces its field of the preset; the choice is printed and recorded.",
                   check=lambda v: v in PRESET_NAMES,
                   message=f"--preset: use one of {', '.join(PRESET_NAMES)}"),
    "augment": Spec("boolean", True, "Training-time augmentation (--augmentation's policy; "
                    "tftool-train: the preset's). Default off "
                    "for tftool-cluster and for tftool-quantize --from=clustered or "
                    "pruned_clustered (batch normalization folded: nothing re-estimates it on "
                    "clean images after fine-tuning), and for tftool-distill's student and "
                    "baseline (a small student on a short schedule loses more to it than "
                    "distillation adds)."),
    "hflip": Spec("boolean", None, "Random horizontal flips (default: the photo preset "
                  "flips; otherwise only data sets whose classes survive a mirror, e.g. "
                  "cifar10, never digits; later stages flip as the float model did)."),
    "seed": Spec("integer", 0, "Training seed: initial weights, data order, augmentation."),
    "strategy": Spec("enum", "auto", "Distribution strategy.", enum_values=STRATEGIES),
    "num_gpus": Spec("integer", None, "Use the first N GPUs (default: all).",
                     check=lambda v: v is None or v >= 1, message="--num_gpus must be ≥ 1"),
    "cpu_replicas": Spec("integer", 1, "Without GPUs: split the CPU into N logical devices and "
                         "train N replicas with MirroredStrategy.", check=lambda v: v >= 1,
                         message="--cpu_replicas must be ≥ 1"),
    "overwrite": Spec("boolean", False, "Run this stage again even if it is complete."),
    "deterministic": Spec("boolean", False, "Deterministic ops and data order: two runs with "
                          "the same --seed give bit-identical weights (tested on CPU; "
                          "slower)."),
    "scale_lr": Spec("boolean", False, "Linear scaling rule (Goyal et al. 2017): learning "
                     "rate × global batch / --reference_batch_size."),
    "reference_batch_size": Spec("integer", 64, "--scale_lr: the global batch at which "
                                 "--learning_rate was tuned (the defaults: 64 = 64 per replica "
                                 "× 1 replica).", check=lambda v: v >= 1,
                                 message="--reference_batch_size must be ≥ 1"),
    "allow_chance_accuracy": Spec("boolean", False, "Write (train) or export a model whose "
                                  "test accuracy is within a few points of chance (1/classes), "
                                  "marked as such in metrics.json, instead of stopping "
                                  "(tftool/chance.py)."),
    # ---- models ----
    "model": Spec("string", "small_cnn", f"Model: a builder name ({', '.join(MODEL_NAMES)}), "
                  f"or a builder of your own: file.py:function or package.module:function, "
                  f"called as function(input_shape, num_classes) and returning a tf_keras "
                  f"Model ([N, H, W, C] pixels / 255 in, [N, num_classes] logits out); "
                  f"tftool-check also takes a saved model file (.h5)."),
    "width": Spec("integer", None, "small_cnn: channels of the first stage (default 32); "
                  "resnet8: filters of the first stack (default 16, MLPerf Tiny's).",
                  check=lambda v: v is None or v >= 1, message="--width must be ≥ 1"),
    "whitening": Spec("boolean", True, "airbench: initialize the 2x2 stem convolution from "
                      "the training images' patch covariance (airbench's whitening; 2,000 "
                      "images); --nowhitening: a random initialization."),
    "num_stages": Spec("integer", None, "small_cnn: stages of two conv blocks, each but the "
                       "last followed by a 2x2 max-pool (default: as many as keep ≥ 2 px, at "
                       "most 3).", check=lambda v: v is None or 1 <= v <= 3,
                       message="--num_stages must be 1, 2 or 3"),
    "minimalistic": Spec("boolean", False, "mobilenet_v3_small/large: the minimalistic "
                         "variant (no hard-swish, no squeeze-excite, 3x3 kernels), which "
                         "tfmot's QAT can wrap; the default variant converts to int8 after "
                         "training but cannot be trained with QAT (tftool-check says why)."),
    "alpha": Spec("float", 1.0, "mobilenet_v2, mobilenet_v3_small/large: width multiplier "
                  "(MobileNet's alpha).",
                  check=lambda v: v > 0, message="--alpha must be > 0"),
    "weights": Spec("string", None, "mobilenet_v2/v3, efficientnet_lite0: pretrained weights: "
                    "imagenet (mobilenet: downloads them from Keras's servers, the one "
                    "thing tftool ever downloads) or the path of a local Keras weights "
                    "file (mobilenet: of keras.applications' backbone, include_top=False, with "
                    "the same --alpha and channels; efficientnet_lite0: of tftool's builder) "
                    "for offline transfer learning. Default: random init."),
    "freeze_backbone_epochs": Spec("integer", 0, "Transfer learning: train only the logits "
                                   "head for the first N epochs with the backbone frozen, then "
                                   "fine-tune every layer at 0.1 × --learning_rate for the "
                                   "rest (as MediaPipe Model Maker does). 0: no freezing.",
                                   check=lambda v: v >= 0,
                                   message="--freeze_backbone_epochs must be ≥ 0"),
    "mixed_precision": Spec("boolean", None, "Train under a mixed policy: mixed_float16 on a "
                            "GPU, mixed_bfloat16 on a CPU with AVX512_BF16/AMX_BF16 (refused "
                            "elsewhere). Default (not given): mixed_bfloat16 for small_cnn on "
                            "such a CPU (~1.4× faster), float32 otherwise (MobileNetV2 is "
                            "slower in bfloat16 on CPU; GPUs: pass it); --nomixed_precision: "
                            "float32. The logits layer and every saved/exported model stay "
                            "float32 (benchmarks/README.md)."),
    "num_classes": Spec("integer", 10, "Logits of a model built by name (tftool-check).",
                        check=lambda v: v >= 2, message="--num_classes must be ≥ 2"),
    # ---- quantize ----
    "from": Spec("enum", "float", "The stage whose model this stage starts from.",
                 enum_values=["float", "pruned", "clustered", "pruned_clustered"]),
    "preserve_sparsity": Spec("boolean", None, "Keep the zeros of a pruned model zero "
                              "(tfmot's prune-preserving QAT); default: on for --from=pruned "
                              "and --from=pruned_clustered."),
    # ---- prune ----
    "target_sparsity": Spec("string", "0.7", "Fraction of zero weights in each pruned kernel at "
                            "the end of the ramp, in (0, 1); auto: the highest of "
                            "0.5/0.6/0.7/0.8/0.9 whose validation accuracy stays within "
                            "--max_accuracy_drop of the float model's, each pruned in full, "
                            "in order, until one drops more.",
                            check=lambda v: _auto_or(v, lambda x: 0.0 < x < 1.0),
                            message="--target_sparsity must be in (0, 1), e.g. 0.7, or auto"),
    "initial_sparsity": Spec("float", 0.0, "Sparsity at the start of the ramp, in "
                             "[0, target_sparsity].", check=lambda v: 0.0 <= v < 1.0,
                             message="--initial_sparsity must be in [0, 1)"),
    "pruning_frequency": Spec("integer", None, "Steps (batches) between mask updates "
                              "(default: the ramp split into 16 updates).",
                              check=lambda v: v is None or v >= 1,
                              message="--pruning_frequency must be ≥ 1 step"),
    "pruning_begin_step": Spec("integer", 0, "Step at which the sparsity ramp starts."),
    "pruning_end_step": Spec("integer", None, "Step at which --target_sparsity is reached "
                             "(default: the last mask update within the first 3/4 of the run; "
                             "the rest fine-tunes at the target)."),
    "skip_layers": Spec("list", ["first_conv", "last_dense", "depthwise"],
                        "Layers the compression leaves alone: kinds (first_conv, last_dense, "
                        "depthwise) and/or layer names; empty (--skip_layers=) compresses every "
                        "Conv2D/Dense. Batch norm has no kernel."),
    "sparsity_m_by_n": Spec("list", None, "Structured m:n pruning, e.g. 2,4: m zeros in every n "
                            "consecutive input-channel weights (tfmot's sparsity_m_by_n; the "
                            "2:4 pattern sparse tensor cores and XNNPACK can use). Writes "
                            "WORKDIR/pruned_2by4 (m,n = 2,4 only)."),
    # ---- cluster ----
    "number_of_clusters": Spec("integer", 16, "Weight clustering: distinct values (centroids) "
                               "per kernel (per output channel with --cluster_per_channel).",
                               check=lambda v: v >= 2,
                               message="--number_of_clusters must be ≥ 2"),
    "cluster_centroids_init": Spec("enum", "linear", "How the centroids start (tfmot's "
                                   "CentroidInitialization). linear, as tfmot's clustering "
                                   "example: evenly spaced centroids leave most weights in "
                                   "the middle clusters, which gzip compresses better "
                                   "(benchmarks/compress_figures.py).",
                                   enum_values=["kmeans_plus_plus", "density_based", "linear",
                                                "random"]),
    "cluster_per_channel": Spec("boolean", False, "Cluster each output channel of a Conv2D "
                                "separately (tfmot's cluster_per_channel)."),
    # ---- distill ----
    "teacher": Spec("string", "float", "Teacher: a stage of WORKDIR (float, qat, pruned, pqat, "
                    "teacher), a stage folder or .h5 path, or a model name (small_cnn, "
                    "mobilenet_v2) to train first into WORKDIR/teacher."),
    "teacher_width": Spec("integer", 64, "small_cnn teacher trained by --teacher=small_cnn: "
                          "channels of the first stage.", check=lambda v: v >= 1,
                          message="--teacher_width must be ≥ 1"),
    "student_model": Spec("enum", "small_cnn", "Student model.", enum_values=MODEL_NAMES),
    "student_width": Spec("integer", 12, "small_cnn student: channels of the first stage "
                          "(default 12: 1/7 the parameters and about 0.35× the 1-thread int8 "
                          "latency of the width-32 float model).", check=lambda v: v >= 1,
                          message="--student_width must be ≥ 1"),
    "student_alpha": Spec("float", 0.35, "mobilenet_v2 student: width multiplier.",
                          check=lambda v: v > 0, message="--student_alpha must be > 0"),
    "temperature": Spec("string", "2", "Distillation softmax temperature T of the soft targets "
                        "(> 0); auto: the best of a small grid on the validation split (short "
                        "runs, then a full one; with --hard_label_weight=auto both).",
                        check=lambda v: _auto_or(v, lambda x: x > 0),
                        message="--temperature must be > 0 (e.g. 2) or auto"),
    "hard_label_weight": Spec("string", "0.5", "Distillation: weight of the hard-label "
                              "cross-entropy; 1 − it weights the T²-scaled soft-target loss "
                              "(Hinton et al. 2015). In [0, 1]; auto: chosen on the validation "
                              "split as --temperature=auto.",
                              check=lambda v: _auto_or(v, lambda x: 0.0 <= x <= 1.0),
                              message="--hard_label_weight must be in [0, 1] or auto"),
    "mixup_alpha": Spec("float", 0.0, "Distillation: mix every training batch (mixup, Zhang et "
                        "al. 2018) with λ ~ Beta(α, α) before teacher and student see it "
                        "(Beyer et al. 2022's consistent teaching); 0: off.",
                        check=lambda v: v >= 0, message="--mixup_alpha must be ≥ 0"),
    "student_qat": Spec("boolean", False, "Distill into a QAT-wrapped student (export: "
                        "student_qat_int8)."),
    "baseline": Spec("boolean", False, "Also train the student from scratch (same epochs, "
                     "seed, initial weights) into WORKDIR/student_baseline."),
    # ---- export and benchmark ----
    "export_dir": Spec("string", "exported", "Folder of the deployable files."),
    "name": Spec("string", None, "File name prefix of the exports (default: "
                 "<dataset>_<model>)."),
    "variants": Spec("list", None, "Variants to export (default: every variant whose stage "
                     "has a model in WORKDIR)."),
    "calibration_steps": Spec("integer", 100, "Train images in the int8 representative_dataset "
                              "(calibration).", check=lambda v: v >= 1,
                              message="--calibration_steps must be ≥ 1"),
    "calibration_seed": Spec("integer", 0, "Seed of the calibration sample (which train images "
                             "the representative_dataset takes)."),
    "calibration_data": Spec("enum", "train", "int8 calibration images: train "
                             "(--calibration_steps train images) or blank (constant black "
                             "images; a deliberately broken int8 for testing the accuracy "
                             "gate, never for a real export).", enum_values=["train", "blank"]),
    "max_accuracy_drop": Spec("float", 0.01, "Accuracy gate: the tolerated drop of a variant's "
                              "top-1 test accuracy below its reference Keras model's "
                              "(fractions: 0.01 = 1 percentage point; 1 = off); --gate says "
                              "how noise is treated.",
                              check=lambda v: 0 <= v <= 1,
                              message="--max_accuracy_drop must be in [0, 1] (0.01 = 1 point)"),
    "gate": Spec("enum", "paired", "Accuracy gate rule, comparing variant and reference image by "
                 "image on the test split: paired = refuse a drop above --max_accuracy_drop "
                 "whose 95% interval excludes zero (a real drop, not noise); confident = "
                 "refuse only when the whole interval is above --max_accuracy_drop; point = "
                 "refuse any point drop above it (no interval).",
                 enum_values=["paired", "confident", "point"]),
    "inference_input_type": Spec("enum", None, "Input tensor type of the integer variants "
                                 "(the converter's term): uint8 (default: raw camera pixels, "
                                 "scale 1/255, zero point 0), int8, or float32.",
                                 enum_values=["uint8", "int8", "float32"]),
    "inference_output_type": Spec("enum", None, "Output tensor type of the integer variants: "
                                  "uint8 (default), int8, or float32.",
                                  enum_values=["uint8", "int8", "float32"]),
    "rgb_input": Spec("boolean", True, "Exports take RGB input; a model trained on grayscale "
                      "gets an in-model RGB-to-gray conversion. --norgb_input keeps the "
                      "trained channel count (firmware that feeds 1 channel)."),
    "output_kind": Spec("enum", "probabilities", "What the exports output: probabilities "
                        "(softmax, what MediaPipe's score threshold expects) or raw logits.",
                        enum_values=["probabilities", "logits"]),
    "quantization_debugger": Spec("boolean", True, "Run LiteRT's QuantizationDebugger on the "
                                  "int8 conversion: the int8 card and report.md name the worst "
                                  "layers (one more conversion; --noquantization_debugger "
                                  "saves it)."),
    "selective_int8": Spec("boolean", True, "When the accuracy gate refuses int8, retry keeping "
                           "its worst layers (QuantizationDebugger) in float, up to 3, and write "
                           "int8_selective if that passes."),
    "onnx": Spec("boolean", False, "Also write EXPORT_DIR/<name>_float32.onnx (tf2onnx) and "
                  "<name>_int8.onnx (ONNX Runtime QDQ, calibrated on the int8 variant's "
                  "images), gated like the .tflite files; the benchmark then times ONNX "
                  "Runtime beside LiteRT. Needs the onnx extra (make install has it)."),
    "micro": Spec("boolean", False, "Also write EXPORT_DIR/micro/: each integer variant as a "
                  "C array, its MicroMutableOpResolver and its measured tensor arena, for "
                  "TensorFlow Lite Micro firmware (trained channel count kept)."),
    "micro_flash_kb": Spec("float", None, "--micro: flash budget in KiB for the model array; "
                           "a variant over it is named and not written.",
                           check=lambda v: v is None or v > 0,
                           message="--micro_flash_kb must be > 0"),
    "micro_ram_kb": Spec("float", None, "--micro: RAM budget in KiB for the tensor arena; a "
                         "variant over it is named and not written.",
                         check=lambda v: v is None or v > 0,
                         message="--micro_ram_kb must be > 0"),
    "threads": Spec("list", None, "CPU thread counts to time, for TFLite and TensorFlow "
                    "(default: 1 and all cores).",
                    check=lambda v: v is None or _positive_ints(v),
                    message="--threads: a comma-separated list of integers ≥ 1, e.g. 1,4"),
    "batch_sizes": Spec("list", ["1", "32"], "Batch sizes to time; batches above 1 are also "
                        "reported as images/s.", check=_positive_ints,
                        message="--batch_sizes: a comma-separated list of integers ≥ 1, e.g. "
                                "1,32"),
    "xnnpack": Spec("list", ["on", "off"], "TFLite runtimes: on = default delegates (XNNPACK), "
                    "off = builtin reference kernels.",
                    check=lambda v: bool(v) and set(v) <= {"on", "off"},
                    message="--xnnpack: on, off or on,off"),
    "min_runs": Spec("integer", 50, "Timed runs per row, at least (benchmark_model "
                     "--num_runs).", check=lambda v: v >= 1, message="--min_runs must be ≥ 1"),
    "min_seconds": Spec("float", 1.0, "Seconds of timed runs per row, at least "
                        "(benchmark_model --min_secs).", check=lambda v: v >= 0,
                        message="--min_seconds must be ≥ 0"),
    "warmup_runs": Spec("integer", 1, "Untimed runs before timing, at least.",
                        check=lambda v: v >= 0, message="--warmup_runs must be ≥ 0"),
    "warmup_seconds": Spec("float", 0.5, "Seconds of untimed runs before timing, at least.",
                           check=lambda v: v >= 0, message="--warmup_seconds must be ≥ 0"),
    "max_cv": Spec("float", 0.05, "Rows whose p50 CV is above this are flagged noisy: the "
                   "coefficient of variation of the medians of 10 consecutive blocks of timed "
                   "runs (how much the p50 moved during the measurement).",
                   check=lambda v: v > 0, message="--max_cv must be > 0"),
    "memory": Spec("boolean", False, "Also measure the peak RSS of a fresh process that loads "
                   "each model and runs it once (one process per model)."),
    # ---- search ----
    "max_latency_ms": Spec("float", None, "Search budget: LiteRT p50 latency (ms), batch 1, at "
                           "the first --threads count, on this CPU.",
                           check=lambda v: v is None or v > 0,
                           message="--max_latency_ms must be > 0"),
    "max_size_kb": Spec("float", None, "Search budget: the exported .tflite file (KiB).",
                        check=lambda v: v is None or v > 0,
                        message="--max_size_kb must be > 0"),
    "max_flash_kb": Spec("float", None, "Search budget: TFLite Micro flash, the model array "
                         "as `make micro` writes it (KiB).", check=lambda v: v is None or v > 0,
                         message="--max_flash_kb must be > 0"),
    "max_arena_kb": Spec("float", None, "Search budget: TFLite Micro RAM, the measured tensor "
                         "arena as `make micro` measures it (KiB).",
                         check=lambda v: v is None or v > 0,
                         message="--max_arena_kb must be > 0"),
    "min_accuracy": Spec("float", None, "Search budget: validation accuracy of the exported "
                         "file, a fraction (0.95 = 95%).",
                         check=lambda v: v is None or 0 < v <= 1,
                         message="--min_accuracy must be in (0, 1], e.g. 0.95"),
    "trials": Spec("integer", 20, "Search: complete trials to reach (across every process "
                   "sharing the study; a resumed search counts the earlier ones).",
                   check=lambda v: v >= 1, message="--trials must be ≥ 1"),
    "timeout": Spec("float", None, "Search: stop starting trials after this many seconds.",
                    check=lambda v: v is None or v > 0, message="--timeout must be > 0 s"),
    "search_epochs": Spec("integer", 10, "Search: epochs of each trial's float model (the "
                          "variants' stages keep their own defaults).",
                          check=lambda v: v >= 1, message="--search_epochs must be ≥ 1"),
    "storage": Spec("string", None, "Search: the Optuna storage (default: the journal file "
                    "WORKDIR/search/journal.log); postgresql://... or mysql://... to share one "
                    "study between processes on several machines."),
    "study_name": Spec("string", "tftool", "Search: the Optuna study's name in --storage."),
    "sampler": Spec("enum", "tpe", "Search: Optuna sampler (tpe: multi-objective TPE, Optuna "
                    "5's default; nsga2; random).", enum_values=["tpe", "nsga2", "random"]),
    "search_objectives": Spec("list", ["accuracy", "latency"], "Search objectives: accuracy "
                              "(maximised), latency and size (minimised).",
                              check=lambda v: bool(v) and "accuracy" in v
                              and set(v) <= {"accuracy", "latency", "size"},
                              message="--search_objectives: accuracy plus latency and/or "
                                      "size"),
    "search_models": Spec("list", None, "Search space: model builders (default: small_cnn, and "
                          "mobilenet_v2 for inputs of ≥ 32 px)."),
    "search_widths": Spec("list", None, "Search space: small_cnn widths (default "
                          "4,8,12,16,24,32,48).", check=lambda v: v is None or _positive_ints(v),
                          message="--search_widths: integers ≥ 1"),
    "search_alphas": Spec("list", None, "Search space: mobilenet_v2 alphas (default "
                          "0.35,0.5,0.75,1.0)."),
    "search_image_sizes": Spec("list", None, "Search space: input sizes in px (default: the "
                               "data set's, 3/4 and 1/2 of it).",
                               check=lambda v: v is None or _positive_ints(v),
                               message="--search_image_sizes: integers ≥ 1"),
    "search_variants": Spec("list", None, "Search space: export variants (default int8, "
                            "qat_int8, pqat_int8, clustered_int8, float16; float16 is left "
                            "out under a flash or arena budget: TFLite Micro runs integers)."),
    "search_sparsities": Spec("list", None, "Search space: pqat_int8's target sparsities "
                              "(default 0.5,0.7)."),
    # ---- predict ----
    "tflite": Spec("string", None, "A .tflite file exported by tftool (labels and "
                   "preprocessing are read from the metadata inside it)."),
    "top_k": Spec("integer", 5, "Classes to show per image (≥ 1).", check=lambda v: v >= 1,
                  message="--top_k must be ≥ 1"),
    "json": Spec("boolean", False, "Print JSON instead of one line per image."),
    "num_threads": Spec("integer", None, "LiteRT CPU threads (default: the runtime's).",
                        check=lambda v: v is None or v >= 1,
                        message="--num_threads must be ≥ 1"),
    # ---- check ----
    "stage": Spec("enum", "float", "With no --model: the stage whose saved model is checked, "
                  "WORKDIR/<stage>/model.h5.",
                  enum_values=["float", "qat", "pruned", "pqat", "teacher", "student",
                               "student_baseline"]),
    "purpose": Spec("list", ["quantize", "prune"], "What to check for: quantize, prune.",
                    check=lambda v: bool(v) and set(v) <= {"quantize", "prune"},
                    message="--purpose: quantize, prune or quantize,prune"),
    "scheme": Spec("enum", "default", "QAT scheme for --purpose=quantize.",
                   enum_values=["default", "prune_preserve"]),
    # ---- tftool-import (importer.py) ----
    "keras_model": Spec("string", None, "A trained Keras classifier to import: a Keras 3 or "
                        "tf_keras .keras file, a tf_keras .h5 file or SavedModel folder. "
                        "tftool-check: check it instead of --model."),
    "custom_objects": Spec("string", None, "Your Python code that defines and registers the "
                           "custom layers or subclassed model of --keras_model "
                           "(keras.saving.register_keras_serializable): file.py or "
                           "package.module, imported before the model is loaded."),
    "input_range": Spec("enum", "auto", "The pixel range the imported model expects: 0_1, "
                        "-1_1 or 0_255; auto: the one under which it classifies the validation "
                        "images best (tftool feeds [0, 1]; the map is folded into the model).",
                        enum_values=["auto", "0_1", "-1_1", "0_255"]),
    "max_output_difference": Spec("float", 1e-5, "The largest |difference| of class "
                                  "probabilities allowed between the imported (rebuilt) model "
                                  "and the original on 100 test images; above it nothing is "
                                  "written.", check=lambda v: v is None or v >= 0,
                                  message="--max_output_difference must be ≥ 0, e.g. 1e-5"),
}

# Old flag name -> its new name. An entry point that takes the new flag also defines the old one
# (hidden from --help) only to refuse it with one line naming the new flag, given on the
# command line or in a flagfile (a flags.txt written before the rename holds --stages).
RENAMED = {"stages": "num_stages"}

DATA_FLAGS = ("workdir", "dataset", "data_dir", "manual_dir", "channels", "image_size",
              "validation_fraction", "test_fraction", "download", "skip_corrupt")
TRAINING_FLAGS = ("epochs", "per_replica_batch_size", "learning_rate", "lr_schedule",
                  "warmup_epochs", "optimizer", "momentum", "weight_decay", "label_smoothing",
                  "use_ema", "ema_momentum", "augment", "augmentation", "hflip", "seed",
                  "strategy", "num_gpus", "cpu_replicas", "overwrite", "deterministic",
                  "scale_lr", "reference_batch_size", "allow_chance_accuracy")

_DEFINERS = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
             "float": flags.DEFINE_float, "boolean": flags.DEFINE_boolean,
             "list": flags.DEFINE_list}


def define(names, defaults=None, flag_values=None, key_module=None):
    """Defines the flags `names` (keys of FLAG_SPECS) in `flag_values`, with `defaults`
    ({name: value}) replacing the table's default where an entry point needs another.

    key_module: the module name absl's `--help` lists the key flags of (it shows
    `main_module_help()`, the key flags of sys.argv[0]); the entry point's flags and absl's
    --verbosity are registered there, so `tftool-train --help` lists the command's own flags
    and `--helpfull` everything (absl's, TensorFlow's) as before.
    Raises: KeyError for a name not in FLAG_SPECS (a new flag goes into the table).
    """
    defaults = defaults or {}
    flag_values = FLAGS if flag_values is None else flag_values
    for name in names:
        spec = FLAG_SPECS[name]
        default = defaults.get(name, spec.default)
        if spec.kind == "enum":
            flags.DEFINE_enum(name, default, spec.enum_values, spec.help,
                              flag_values=flag_values)
        else:
            _DEFINERS[spec.kind](name, default, spec.help, flag_values=flag_values)
        if spec.check is not None:
            flags.register_validator(name, spec.check, message=spec.message,
                                     flag_values=flag_values)
        if key_module is not None:
            flag_values.register_key_flag_for_module(key_module, flag_values[name])
    for old, new in RENAMED.items():
        if new in names and old not in flag_values:
            flags.DEFINE_string(old, None, f"Renamed --{new}.", flag_values=flag_values)
    if key_module is not None and "verbosity" in flag_values:
        flag_values.register_key_flag_for_module(key_module, flag_values["verbosity"])


# ---- flags -> library arguments --------------------------------------------------------------
def data_settings(stage):
    """stage_runner.data_settings from the data flags (see there)."""
    given = {k: FLAGS[k].value for k in stage_runner.DATA_SETTINGS}
    given["skip_corrupt"] = FLAGS.skip_corrupt
    explicit = {k for k in stage_runner.DATA_SETTINGS if FLAGS[k].present}
    return stage_runner.data_settings(FLAGS.workdir, stage, given, explicit)


def load_data(settings):
    """The data.Dataset of `settings` (data_settings)."""
    from tftool import data

    fraction = settings.get("validation_fraction") or data.DEFAULT_VALIDATION_FRACTION
    return data.load(settings["dataset"], data_dir=settings["data_dir"],
                     manual_dir=settings["manual_dir"], channels=settings["channels"],
                     download=FLAGS.download, skip_corrupt=bool(settings.get("skip_corrupt")),
                     validation_fraction=fraction,
                     test_fraction=settings.get("test_fraction") or data.DEFAULT_TEST_FRACTION)


def image_size(dataset, settings, stage=None):
    """(height, width) the stage runs at: the recorded or given size; for a workdir whose
    float/config.json recorded null (made before sizes were recorded, when the size was the
    first image's, uncapped) the float model's own input size, unless the float stage itself
    is retrained (`stage` "float" with --overwrite); else data.resolve_image_size's choice."""
    from tftool import data, stage_runner

    size = settings["image_size"]
    retrained = stage == "float" and "overwrite" in FLAGS and FLAGS.overwrite
    if size is None and not retrained and _recorded_null_size():
        size = stage_runner.trained_image_size(FLAGS.workdir)
    return data.resolve_image_size(dataset, size)


def _recorded_null_size():
    """Whether WORKDIR/float/config.json records image_size null (an older tftool's)."""
    from tftool import fileio, stages

    path = os.path.join(stages.stage_dir(FLAGS.workdir, "float"), "config.json")
    try:
        old = fileio.read_json_object(path) or {}
    except UserError:  # damaged: check_config names it
        old = {}
    return "image_size" in old and old["image_size"] is None


def recorded_image_size(settings, size):
    """What tftool-train records as image_size in config.json: the resolved `size` (height,
    width) as data.size_setting gives it, so later stages and readers see the size trained at.
    A workdir whose float/config.json recorded none (made before sizes were recorded) keeps
    None unless --image_size or --overwrite is given, so re-running it resumes or skips the
    stage instead of refusing it."""
    from tftool import data

    if settings.get("image_size") is None and not FLAGS.overwrite and _recorded_null_size():
        return None
    return data.size_setting(size)


def build_strategy():
    """The strategy from --strategy/--num_gpus/--cpu_replicas (call before any TF op)."""
    from tftool.train import strategy

    built = strategy.build(FLAGS.strategy, FLAGS.num_gpus, FLAGS.cpu_replicas)
    logging.info("strategy %s", strategy.describe(built))
    return built


def inherited_training(workdir):
    """The settings a later stage takes from the float model (presets.INHERITED: what its
    training images looked like), as the stage runner recorded them in WORKDIR/float/
    metrics.json; {} where the float model predates them or is missing."""
    from tftool import stages
    from tftool.train import presets

    metrics = stages.read_metrics(workdir, "float") or {}
    return {k: metrics[k] for k in presets.INHERITED if k in metrics}


def train_config(dataset):
    """A train.fit.TrainConfig from the training flags; hflip defaults from the data set.

    A stage after the float one (no --preset flag) takes the float model's augmentation
    policy and flips (inherited_training) unless its own flag is given, so QAT, pruning and
    distillation fine-tune on images like the ones the float model was trained on."""
    from tftool.train import fit

    inherited = {} if "preset" in FLAGS else inherited_training(FLAGS.workdir)

    def value(name):
        if name in inherited and not FLAGS[name].present:
            return inherited[name]
        return FLAGS[name].value

    hflip = value("hflip")
    hflip = dataset.hflip_safe if hflip is None else hflip
    return fit.TrainConfig(
        epochs=FLAGS.epochs, per_replica_batch_size=FLAGS.per_replica_batch_size,
        learning_rate=FLAGS.learning_rate, lr_schedule=FLAGS.lr_schedule,
        warmup_epochs=FLAGS.warmup_epochs, warmup_explicit=FLAGS["warmup_epochs"].present,
        optimizer=FLAGS.optimizer, momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay, label_smoothing=FLAGS.label_smoothing,
        use_ema=FLAGS.use_ema, ema_momentum=FLAGS.ema_momentum,
        augment=FLAGS.augment, augmentation=value("augmentation"), hflip=hflip,
        seed=FLAGS.seed, deterministic=FLAGS.deterministic, scale_lr=FLAGS.scale_lr,
        reference_batch_size=FLAGS.reference_batch_size,
        freeze_backbone_epochs=(FLAGS.freeze_backbone_epochs
                                if "freeze_backbone_epochs" in FLAGS else 0))


def apply_preset(dataset, size, prog="tftool-train"):
    """Chooses the training preset for `dataset` at `size` (presets.choose on --preset) and
    sets every preset field the user did not give as a flag to the preset's value, so the
    rest of the run (and flags.txt) sees one resolved set of settings. Prints one line: the
    preset, why, and its main settings. Returns (Preset, reason).
    Raises: UserError: an unknown --preset."""
    from tftool.train import presets

    preset, reason = presets.choose(FLAGS.preset, FLAGS.dataset or "digits",
                                    dataset.image_shape[-1], size, dataset.hflip_safe)
    given = {name: FLAGS[name].value for name in presets.FIELDS
             if name in FLAGS and FLAGS[name].present}
    for name, value in presets.resolve(preset, given).items():
        if name in FLAGS and name not in given:
            setattr(FLAGS, name, value)
    overridden = f"; flags given: {', '.join(sorted(given))}" if given else ""
    flips = "flips" if (dataset.hflip_safe if FLAGS.hflip is None else FLAGS.hflip) \
        else "no flips"
    print(f"{prog}: preset {preset.name} ({reason}): {FLAGS.model}, {FLAGS.epochs} epochs, "
          f"{FLAGS.optimizer} {FLAGS.learning_rate:g}, batch {FLAGS.per_replica_batch_size}, "
          f"{FLAGS.augmentation if FLAGS.augment else 'no'} augmentation, {flips}, label "
          f"smoothing {FLAGS.label_smoothing:g}{overridden}", flush=True)
    return preset, reason


def check_training_flags():
    """Refuses training flags that contradict each other, before any data is read or folder
    made: an explicit --warmup_epochs (with --lr_schedule=cosine_warmup) of at least --epochs,
    and --freeze_backbone_epochs not below --epochs. A default warm-up is scaled to the run
    instead (train/fit.py), so `--epochs=1` works with every default. Settings still unset
    (None: tftool-train before its preset is applied) are not checked.
    Raises: UserError naming the flags and the fix."""
    if FLAGS.epochs is None:
        return
    # An unset schedule is a preset's, and every preset warms up (presets.py, tested).
    if (FLAGS.lr_schedule in (None, "cosine_warmup") and FLAGS["warmup_epochs"].present
            and FLAGS.warmup_epochs >= FLAGS.epochs):
        raise UserError(f"--warmup_epochs={FLAGS.warmup_epochs:g} leaves no epoch after warm-up "
                        f"with --epochs={FLAGS.epochs}; pass a smaller --warmup_epochs (e.g. 0)")
    freeze = FLAGS.freeze_backbone_epochs if "freeze_backbone_epochs" in FLAGS else 0
    if freeze and freeze >= FLAGS.epochs:
        raise UserError(f"--freeze_backbone_epochs={freeze} must be in [0, --epochs="
                        f"{FLAGS.epochs}): at least one epoch fine-tunes the whole model")


def stage_context(stage, strategy=None, resolve=None):
    """(stage_runner.Context, data settings) for a stage that trains, from the flags.

    Checks the training flags first (check_training_flags), then builds the strategy (before
    TensorFlow's first op) unless one is given. resolve: called as resolve(dataset,
    (height, width)) once the data are loaded (tftool-train's preset), before the training
    flags are checked again.
    """
    if "epochs" in FLAGS:
        check_training_flags()
    strategy = strategy or build_strategy()
    settings = data_settings(stage)
    dataset = load_data(settings)
    if resolve is not None:
        resolve(dataset, image_size(dataset, settings, stage))
        check_training_flags()
    context = stage_runner.Context(workdir=FLAGS.workdir, strategy=strategy, dataset=dataset,
                                   image_size=image_size(dataset, settings, stage),
                                   overwrite=FLAGS.overwrite, flags_text=flags_text(),
                                   allow_chance_accuracy=bool(
                                       "allow_chance_accuracy" in FLAGS
                                       and FLAGS.allow_chance_accuracy))
    return context, settings


def under_make():
    """Whether this entry point runs as a step of the Makefile's pipeline (the Makefile sets
    TFTOOL_SHARED_FLAGS=1 for every stage it runs)."""
    return os.environ.get("TFTOOL_SHARED_FLAGS") == "1"


def still_works():
    """What a model tfmot cannot take still gets, as the skip lines say it."""
    return (f"still works: every post-training variant "
            f"({', '.join(stages.get('float').variants)}), selective int8, the accuracy gate, "
            f"the benchmark, micro and distillation")


def skip_stage(prog, stage, reason, fix=None, cause=None, **record):
    """Prints the one skip line `<prog>: skipped: <reason>; still works: ...; <fix>` and
    records it in WORKDIR/<stage>/skipped.json (stage_runner.mark_skipped), which export and
    the benchmark's report read and a later run of the stage that goes ahead removes.
    cause: the short reason export and the report name (stages.skipped_summary), the same
    for every stage skipped after the first (default: `reason`)."""
    print(f"{prog}: skipped: {reason}; {still_works()}" + (f"; {fix}" if fix else ""),
          flush=True)
    stage_runner.mark_skipped(FLAGS.workdir, stage, {
        "command": prog, "reason": reason, "cause": cause or reason, "fix": fix, **record})


def run_or_skip(prog, run, stage):
    """Calls run() for WORKDIR/<stage>; returns False when it skipped the stage, else True.

    When tfmot cannot take the model (check.Unsupported: a subclassed or nested model, a
    layer its registries lack), it depends on who asked:
      - under make (TFTOOL_SHARED_FLAGS=1: `make all`, `make compress-all`, a stage target),
        the stage is skipped with one line that names the first blocking layer and what
        still works, WORKDIR/<stage>/skipped.json records it, and the exit status is 0: the
        user asked the pipeline for everything it can make, and the post-training variants,
        the gate, the benchmark and distillation do not need tfmot, so one stage tfmot cannot
        apply must not stop them (export then has no variant of that stage, and says so);
      - typed by hand, it stays the usual one-line error, exit status 2, and nothing is
        written: the user asked for this one stage, and an exit 0 without its model would let
        a script go on to `tftool-export --variants=qat_int8` and fail further away from the
        cause (the same rule as every other entry point: a stage that cannot do what it was
        asked says why and fails).
    """
    from tftool.optimize import check

    try:
        run()
    except check.Unsupported as e:
        if not under_make() or not e.blocking:
            raise
        skip_stage(prog, stage, e.summary(), e.fix, cause=e.short(), purpose=e.purpose,
                   layers=[f"{f['layer']} ({f['class']})" for f in e.blocking])
        return False
    return True


def input_or_skip(prog, stage, source, needed_by):
    """True when WORKDIR/<source>, the input of WORKDIR/<stage>, has a model.

    When it has none because make skipped it (stages.read_skipped: tfmot cannot take the
    model), under make this stage is skipped too (skip_stage: one line naming the skipped
    input, exit status 0) and False is returned. Otherwise, and always by hand, raises
    UserError (stages.missing_model_message: the command that makes the input, or why it was
    skipped), as run_or_skip says why."""
    workdir = FLAGS.workdir
    if stages.has_model(workdir, source):
        return True
    skipped = stages.read_skipped(workdir, source)
    if skipped is None or not under_make():
        raise UserError(stages.missing_model_message(workdir, source, needed_by))
    cause = skipped.get("cause") or skipped["reason"]
    skip_stage(prog, stage, f"its input {stages.stage_dir(workdir, source)} was skipped "
                            f"({cause})", skipped.get("fix"), cause=cause, input_skipped=source)
    return False


def default_name(workdir):
    """<dataset>_<model> from WORKDIR/float/config.json, safe as a file name prefix."""
    from tftool import fileio

    config = fileio.read_json_object(os.path.join(workdir, "float", "config.json")) or {}
    dataset = config.get("dataset") or "model"
    if dataset.startswith("folder:"):
        dataset = os.path.basename(os.path.normpath(dataset[len("folder:"):]))
    model = config.get("model") or "model"
    model = model.rsplit(":", 1)[-1]  # a builder of the user's, file.py:function: its function
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}_{model}")


# Run-control flags that must not be replayed from flags.txt: `--flagfile=WORKDIR/x/flags.txt`
# repeats the run, it does not force a new one.
NOT_RECORDED = ("overwrite", "allow_chance_accuracy")


def flags_text(flag_values=None):
    """The resolved tftool flags (of `flag_values`, default this entry point's) in absl
    flagfile form, one --name=value a line, without the run-control flags of NOT_RECORDED."""
    flag_values = FLAGS if flag_values is None else flag_values
    lines = set()
    for name in FLAG_SPECS:
        if name in flag_values and name not in NOT_RECORDED:
            text = flag_values[name].serialize()
            if text:
                lines.add(text)
    return "\n".join(sorted(lines)) + "\n"


# ---- running ---------------------------------------------------------------------------------
# Flags absl's parser handles itself; they are not in FLAGS but every entry point takes them.
ABSL_SPECIAL_FLAGS = ("flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml",
                      "only_check_args")


def drop_foreign_flags(argv, prog):
    """Removes --name[=value] arguments that this entry point does not define.

    Only used when TFTOOL_SHARED_FLAGS=1 (the Makefile sets it), so that `make all FLAGS=...`
    can hand one set of flags to every stage; each stage says which flags it ignored, so a typo
    is still visible. Run directly, an unknown flag stays a parse error.
    """
    kept = [argv[0]]
    for arg in argv[1:]:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        known = (name is None or name in FLAGS or name in ABSL_SPECIAL_FLAGS
                 or (name.startswith("no") and name[2:] in FLAGS))
        if known:
            kept.append(arg)
        else:
            print(f"{prog}: note: ignoring {arg} (not a flag of {prog})", file=sys.stderr)
    return kept


_OS_FIXES = {
    errno.ENOTDIR: "a file stands where a folder belongs; move it away or choose another path",
    errno.EISDIR: "a folder stands where a file belongs; move it away or choose another path",
    errno.EACCES: "permission denied; fix the permissions or choose another path",
    errno.EPERM: "operation not permitted; fix the permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "a file stands where a folder belongs; move it away or choose another path",
    errno.ENOSPC: "no space left on the device; free some space and run again",
}


def os_error_line(e):
    """One line for an OSError from the file system: the path, what is wrong, the fix."""
    path = e.filename or ""
    if e.filename2:
        path = f"{path} -> {e.filename2}"
    fix = _OS_FIXES.get(e.errno, "check the path and run again")
    reason = e.strerror or str(e)
    return f"{path}: {reason}; {fix}" if path else f"{reason}; {fix}"


def guarded(prog, main, positional=False):
    """`main` wrapped so that every user-caused failure becomes one line `<prog>: error: ...`
    on stderr and exit status 2 (SystemExit), with no traceback: UserError, and OSError from
    the file system (a file where a folder belongs, a folder that cannot be read or written,
    a full disk). Positional arguments are refused unless `positional`; so is a flag's old
    name (RENAMED), with the new one."""
    def wrapped(argv):
        if len(argv) > 1 and not positional:
            fail(prog, f"unexpected arguments {' '.join(argv[1:])}; flags are --name=value")
        for old, new in RENAMED.items():
            if old in FLAGS and FLAGS[old].present:
                fail(prog, f"--{old} is now --{new}: pass --{new}={FLAGS[old].value}")
        try:
            return main(argv)
        except UserError as e:
            fail(prog, str(e))
        except OSError as e:
            if e.filename is None and e.errno is None:
                raise  # not a file-system error: a bug, keep its traceback
            fail(prog, os_error_line(e))
    return wrapped


def run(prog, main, positional=False):
    """absl `app.run` of guarded(prog, main), for entry point `prog` (e.g. "tftool-train"),
    with Python's log and warning noise hidden unless --verbosity was given (quiet_logs)."""
    argv = sys.argv
    if os.environ.get("TFTOOL_SHARED_FLAGS") == "1":
        argv = drop_foreign_flags(argv, prog)
    guarded_main = guarded(prog, main, positional)

    def quiet_main(argv):
        if not FLAGS["verbosity"].present:
            quiet_logs()
        return guarded_main(argv)
    app.run(quiet_main, argv=argv, flags_parser=parse_flags)


def parse_flags(argv):
    """absl's parse_flags_with_usage (a bad flag: its FATAL line, exit 1), except that a help
    flag (--help, --helpshort, --helpfull, -?), which absl ends with exit status 1 after
    printing the usage, exits 0: asking for help is not a failure (GNU and argparse exit 0),
    so a script or `make` can call it. A bad value before the help flag still exits 1 (absl
    reports an unknown flag only after the whole line, so `--bogus --help` prints the help)."""
    try:
        return FLAGS(argv)
    except flags.Error:
        return app.parse_flags_with_usage(argv)  # parses again to print absl's message
    except SystemExit as e:
        sys.exit(0 if e.code == 1 else e.code)  # only a help flag exits inside parsing


# Python-side messages that say nothing a user can act on: Keras's per-batch callback timing
# on 10-ms batches, and the deprecation of tf.lite.Interpreter that TensorFlow's own
# QuantizationDebugger triggers (tftool runs ai_edge_litert's interpreter everywhere else).
# tf_keras's note that a model loaded for inference has no compiled metrics is the same, and so
# is TFDS's note, while it prepares digits the first time, that the version folder it is
# writing has no dataset_info.json yet.
QUIET_LOG_MESSAGES = (r"Callback method `on_train_batch_(begin|end)` is slow",
                      r"Compiled the loaded model, but the compiled metrics have yet to be built",
                      r"Variant folder .* has no dataset_info\.json")
QUIET_WARNINGS = (r"\s*Warning: tf\.lite\.Interpreter is deprecated",)


def quiet_logs():
    """absl and TensorFlow's Python loggers at WARNING (absl's app.run raises an unset
    --verbosity to INFO), QUIET_LOG_MESSAGES and QUIET_WARNINGS dropped. `-v 0` keeps all."""
    import logging as std_logging
    import warnings

    logging.set_verbosity(logging.WARNING)

    class _Drop(std_logging.Filter):
        def filter(self, record):
            text = record.getMessage()
            return not any(re.search(p, text) for p in QUIET_LOG_MESSAGES)
    for name in ("tensorflow", "absl"):
        logger = std_logging.getLogger(name)
        logger.setLevel(std_logging.WARNING)
        logger.addFilter(_Drop())
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def entry_point(prog, names, main, defaults=None, positional=False):
    """Defines the flags `names` (with `defaults`) and runs `main` as `prog` (see run).
    `--help` shows the docstring of `main`'s module and these flags (define's key_module)."""
    define(names, defaults, key_module=sys.argv[0])
    entry = sys.modules.get(main.__module__)
    script = sys.modules.get("__main__")
    if script is not None and entry is not None and entry.__doc__:
        script.__doc__ = entry.__doc__  # what absl's usage() prints above the flags
    run(prog, main, positional)
