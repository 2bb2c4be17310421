"""The one table of flags (FLAG_SPECS) that every entry point defines its flags from, and
`define`, which does it.

Every flag of every entry point is defined from FLAG_SPECS, so a flag name means one thing
everywhere (tests/test_cli.py checks it); an entry point lists the names it takes and its own
defaults. A per-stage flag (Spec.per_stage: the training settings, the layers left alone, the
timing) has no value in the table: each entry point that takes it hands `define` its value
from the stage's one home (jobs.DEFAULTS, train/presets.py, benchmark/timing.py TIMING), and
`define` refuses one without it (tests/test_defaults.py checks the homes). Flags are defined
when the entry point runs (`main`), not on import, so tests can define each entry point's
flags into a fresh FlagValues. flags_text writes the resolved flags back in flagfile form
(WORKDIR/<stage>/flags.txt).

Over 400 lines because FLAG_SPECS alone is ~430: every flag's type, default, help and check
stay in one table, so one name has one meaning.
"""
import dataclasses
from typing import Any, Callable, Optional, Sequence

from tftool import jobs

from absl import flags

# Read when a function runs: run.using_flags points it at a fresh FlagValues for an
# in-process call (tftool.api, the tests).
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Spec:
    """One flag: absl kind ("string", "integer", "float", "boolean", "enum", "list"),
    default, help text, enum values, and a validator (predicate, message).

    per_stage: the default differs per entry point and lives in the stage's home; the table's
    default is None and every entry point that defines the flag must pass its own (define).
    """
    kind: str
    default: Any
    help: str
    enum_values: Optional[Sequence[str]] = None
    check: Optional[Callable[[Any], bool]] = None
    message: str = ""
    per_stage: bool = False


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
TIMINGS = ("standard", "quick")
# What the help of a per-stage flag says of its default (the command's --help shows the value).
STAGE_DEFAULT = ("Default: the stage's (tftool-train: the preset's); each command's --help "
                 "shows it.")
TIMING_DEFAULT = "Default: the --timing preset's (shown: the command's default preset's)."

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
    # ---- training (every stage that trains; defaults per stage: jobs.DEFAULTS, presets) ----
    "epochs": Spec("integer", None, f"Training epochs (≥ 1). tftool-distill: default the "
                   f"epochs its teacher was trained ({jobs.NAMED_TEACHER_EPOCHS} for a teacher "
                   f"it trains itself). " + STAGE_DEFAULT,
                   check=lambda v: v is None or v >= 1, message="--epochs must be ≥ 1",
                   per_stage=True),
    "per_replica_batch_size": Spec("integer", None, "Batch per replica; the global batch is "
                                   "this × replicas. " + STAGE_DEFAULT,
                                   check=lambda v: v is None or v >= 1,
                                   message="--per_replica_batch_size must be ≥ 1",
                                   per_stage=True),
    "learning_rate": Spec("float", None, "Peak learning rate (> 0). " + STAGE_DEFAULT,
                          check=lambda v: v is None or v > 0,
                          message="--learning_rate must be > 0", per_stage=True),
    "lr_schedule": Spec("enum", None, "Learning-rate schedule. " + STAGE_DEFAULT,
                        enum_values=SCHEDULES, per_stage=True),
    "warmup_epochs": Spec("float", None, "Linear warm-up (cosine_warmup), epochs. "
                          + STAGE_DEFAULT, check=lambda v: v is None or v >= 0,
                          message="--warmup_epochs must be ≥ 0", per_stage=True),
    "optimizer": Spec("enum", None, "Optimizer. " + STAGE_DEFAULT, enum_values=OPTIMIZERS,
                      per_stage=True),
    "weight_decay": Spec("float", None, "Decoupled weight decay (0: none). " + STAGE_DEFAULT,
                         check=lambda v: v is None or v >= 0,
                         message="--weight_decay must be ≥ 0", per_stage=True),
    "momentum": Spec("float", None, "SGD's Nesterov momentum, in [0, 1); Adam ignores it. "
                     + STAGE_DEFAULT, check=lambda v: v is None or 0.0 <= v < 1.0,
                     message="--momentum must be in [0, 1), e.g. 0.9", per_stage=True),
    "label_smoothing": Spec("float", None, "Label smoothing ε of the cross-entropy (Szegedy "
                            "et al. 2016), in [0, 1); 0: none. " + STAGE_DEFAULT,
                            check=lambda v: v is None or 0.0 <= v < 1.0,
                            message="--label_smoothing must be in [0, 1), e.g. 0.2",
                            per_stage=True),
    "use_ema": Spec("boolean", None, "Keep an exponential moving average of the weights "
                    "(Keras optimizers' use_ema) and end training with it. " + STAGE_DEFAULT,
                    per_stage=True),
    "ema_momentum": Spec("float", None, "--use_ema: the average's decay per step, in (0, 1). "
                         + STAGE_DEFAULT, check=lambda v: v is None or 0.0 < v < 1.0,
                         message="--ema_momentum must be in (0, 1), e.g. 0.99", per_stage=True),
    "augmentation": Spec("enum", None, "Augmentation policy when --augment is on: "
                         "geometric (translation ±10%, rotation, zoom, contrast, black fill: "
                         "the digits recipe) or flip_shift (a 2-px shift with reflected "
                         "borders: the photo recipe; flips come from --hflip). Default: "
                         "tftool-train: the preset's; later stages: the float model's.",
                         enum_values=AUGMENTATIONS, per_stage=True),
    "preset": Spec("string", "auto", "Training recipe (tftool/train/presets.py): photo "
                   "(airbench network, flip + shift, Nesterov SGD, label smoothing: RGB "
                   "photos), digits (small_cnn, Adam, geometric augmentation: the built-in "
                   "digits and anything a mirror changes) or auto (photo for 3-channel images "
                   "of ≥ 32 px whose classes survive a mirror, else digits). Every flag given "
                   "replaces its field of the preset; the choice is printed and recorded.",
                   check=lambda v: v in PRESET_NAMES,
                   message=f"--preset: use one of {', '.join(PRESET_NAMES)}"),
    "augment": Spec("boolean", None, "Training-time augmentation (--augmentation's policy; "
                    "tftool-train: the preset's). Default off "
                    "for tftool-cluster and for tftool-quantize --from=clustered or "
                    "pruned_clustered (batch normalization folded: nothing re-estimates it on "
                    "clean images after fine-tuning), and for tftool-distill's student and "
                    "baseline (a small student on a short schedule loses more to it than "
                    "distillation adds).", per_stage=True),
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
    "model": Spec("string", None, f"Model: a builder name ({', '.join(MODEL_NAMES)}), "
                  f"or a builder of your own: file.py:function or package.module:function, "
                  f"called as function(input_shape, num_classes) and returning a tf_keras "
                  f"Model ([N, H, W, C] pixels / 255 in, [N, num_classes] logits out); "
                  f"tftool-check also takes a saved model file (.h5). tftool-train: default "
                  f"the preset's."),
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
    "skip_layers": Spec("list", None,
                        "Layers the compression leaves alone: kinds (first_conv, last_dense, "
                        "depthwise) and/or layer names; empty (--skip_layers=) compresses every "
                        "Conv2D/Dense. Batch norm has no kernel. Default: the stage's "
                        "(jobs.DEFAULTS); each command's --help shows it.", per_stage=True),
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
    "timing": Spec("enum", None, "Timing preset (benchmark/timing.py TIMING): standard, TFLite "
                   "benchmark_model's own defaults, or quick, shorter rows: the first look "
                   "(make benchmark) and the search's trials. It sets --min_runs, "
                   "--min_seconds, --warmup_runs and --warmup_seconds, except those given. "
                   "Default: the command's; its --help shows it.",
                   enum_values=TIMINGS, per_stage=True),
    "min_runs": Spec("integer", None, "Timed runs per row, at least (benchmark_model "
                     "--num_runs). " + TIMING_DEFAULT, check=lambda v: v >= 1,
                     message="--min_runs must be ≥ 1", per_stage=True),
    "min_seconds": Spec("float", None, "Seconds of timed runs per row, at least "
                        "(benchmark_model --min_secs). " + TIMING_DEFAULT,
                        check=lambda v: v >= 0, message="--min_seconds must be ≥ 0",
                        per_stage=True),
    "warmup_runs": Spec("integer", None, "Untimed runs before timing, at least. "
                        + TIMING_DEFAULT, check=lambda v: v >= 0,
                        message="--warmup_runs must be ≥ 0", per_stage=True),
    "warmup_seconds": Spec("float", None, "Seconds of untimed runs before timing, at least. "
                           + TIMING_DEFAULT, check=lambda v: v >= 0,
                           message="--warmup_seconds must be ≥ 0", per_stage=True),
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
TIMING_FLAGS = ("min_runs", "min_seconds", "warmup_runs", "warmup_seconds")
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
    ({name: value}) replacing the table's default where an entry point needs another. Every
    per-stage flag (Spec.per_stage) takes its default from `defaults`, which an entry point
    reads from the stage's home (None there: decided when the command runs, e.g. by
    tftool-train's preset), so its --help shows the command's own value.

    key_module: the module name absl's `--help` lists the key flags of (it shows
    `main_module_help()`, the key flags of sys.argv[0]); the entry point's flags and absl's
    --verbosity are registered there, so `tftool-train --help` lists the command's own flags
    and `--helpfull` everything (absl's, TensorFlow's) as before.
    Raises: KeyError for a name not in FLAG_SPECS (a new flag goes into the table);
      ValueError for a per-stage flag without a default in `defaults` (nothing is defined).
    """
    defaults = defaults or {}
    flag_values = FLAGS if flag_values is None else flag_values
    missing = [n for n in names if FLAG_SPECS[n].per_stage and n not in defaults]
    if missing:
        raise ValueError(f"per-stage flag(s) {', '.join('--' + n for n in missing)} need the "
                         f"command's default: pass it from the stage's home (jobs.DEFAULTS, "
                         f"train/presets.py, benchmark/timing.py TIMING) in the entry point's "
                         f"DEFAULTS; the flag table holds none")
    for name in names:
        spec = FLAG_SPECS[name]
        default = defaults.get(name, spec.default)
        if isinstance(default, list):  # absl keeps a list default by reference: a copy, so
            default = list(default)  # a caller that changes FLAGS.x leaves the home alone
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


def command_flags(module, names=None):
    """A fresh absl FlagValues with entry point `module`'s flags (`names`, default its NAMES)
    defined as its cli_main defines them into the global FLAGS, with the module's DEFAULTS:
    what an in-process call (tftool.api, the tests' run_main) parses its arguments into.
    Raises what `define` raises."""
    values = flags.FlagValues()
    define(module.NAMES if names is None else names, getattr(module, "DEFAULTS", None), values)
    return values


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
