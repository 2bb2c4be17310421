"""The stage registry: one row per stage, the single place that says what a stage is.

A stage is a folder WORKDIR/<name>/ holding one Keras model (model.h5) made by one command
from an input stage (or from the data alone). Export, benchmark, the error messages that say
"run X first", the Makefile check in the tests and the docs all read this table; adding a
stage is one row here, one transform in optimize/ and one short main in cli/.

Fields of a row (Stage):
  name        folder name under WORKDIR
  input       the stage whose model this one starts from (None: trained from the data)
  command     the command that makes it (what error messages tell the user to run)
  make_target the Makefile target that runs `command` (with the variable that adds its
              options, where the target's recipe does not)
  qat         whether its model is QAT-wrapped: True, False, or None when a flag of the run
              decides (the student: --student_qat); then metrics.json's "qat" says
  variants    export variant -> conversion mode (export/convert.py); a variant whose mode is
              "qat_int8" is made only from a QAT-wrapped model, the others only from a plain one
  gate        the stage whose Keras test accuracy the accuracy gate compares the variants
              with: "float" for conversions and compressions of the float model, the stage
              itself for other models (teacher, students: a student a point below the float
              teacher still ships, a broken conversion of it does not)
"""
import dataclasses
import os
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Stage:
    """One row of the registry (see the module docstring for the fields)."""
    name: str
    input: Optional[str]
    command: str
    make_target: str
    qat: Optional[bool]
    variants: Mapping[str, str]
    gate: str


REGISTRY = (
    Stage("float", None, "tftool-train", "train", False,
          {"float32": "float32", "float16": "float16", "dynamic_range": "dynamic_range",
           "int8": "int8", "int16x8": "int16x8"}, gate="float"),
    Stage("qat", "float", "tftool-quantize", "quantize", True, {"qat_int8": "qat_int8"},
          gate="float"),
    Stage("pruned", "float", "tftool-prune", "prune", False, {"pruned_int8": "int8"},
          gate="float"),
    Stage("pqat", "pruned", "tftool-quantize --from=pruned", "pqat", True,
          {"pqat_int8": "qat_int8"}, gate="float"),
    # Collaborative optimization (tfmot): clustering, cluster-preserving QAT, and the
    # sparsity-preserving clustering of the pruned model followed by PCQAT; 2:4 pruning.
    # Clustered kernels are quantized per tensor (int8_per_tensor here; per-tensor weight
    # quantizers in CQAT/PCQAT), so each keeps ≤ number_of_clusters int8 values.
    Stage("clustered", "float", "tftool-cluster", "cluster", False,
          {"clustered_int8": "int8_per_tensor"}, gate="float"),
    Stage("cqat", "clustered", "tftool-quantize --from=clustered", "cqat", True,
          {"cqat_int8": "qat_int8"}, gate="float"),
    Stage("pruned_clustered", "pruned", "tftool-cluster --from=pruned", "pcqat", False,
          {"pruned_clustered_int8": "int8_per_tensor"}, gate="float"),
    Stage("pcqat", "pruned_clustered", "tftool-quantize --from=pruned_clustered", "pcqat", True,
          {"pcqat_int8": "qat_int8"}, gate="float"),
    Stage("pruned_2by4", "float", "tftool-prune --sparsity_m_by_n=2,4", "prune-2by4", False,
          {"pruned_2by4_int8": "int8"}, gate="float"),
    Stage("teacher", None, "tftool-distill --teacher=small_cnn",
          "distill DISTILL_FLAGS=--teacher=small_cnn", False,
          {"teacher_int8": "int8"}, gate="teacher"),
    # The student's teacher is --teacher (default the float model); `input` names the default.
    Stage("student", "float", "tftool-distill", "distill", None,
          {"student_int8": "int8", "student_qat_int8": "qat_int8"}, gate="student"),
    Stage("student_baseline", None, "tftool-distill --baseline", "distill", None,
          {"student_baseline_int8": "int8", "student_baseline_qat_int8": "qat_int8"},
          gate="student_baseline"),
)
STAGES = {s.name: s for s in REGISTRY}
NAMES = tuple(STAGES)
# variant -> (stage, conversion mode), in registry order
VARIANTS = {variant: (s.name, mode) for s in REGISTRY for variant, mode in s.variants.items()}
MODEL_FILE = "model.h5"
# Made by export, not from a stage's own row: when the accuracy gate refuses `int8`, export
# keeps the worst layers in float (export/debug.py) and writes this variant instead.
SELECTIVE_VARIANT = "int8_selective"
# Variants trained as a comparison for another: the student against the same student trained
# on the labels alone (tftool-distill --baseline). The benchmark and the report compare each
# pair image by image ("distillation did not help here" when the interval says so).
BASELINES = {"student_int8": "student_baseline_int8",
             "student_qat_int8": "student_baseline_qat_int8"}
# The QAT scheme a QAT stage was trained with, when its model can only be loaded by rebuilding
# it from its input (optimize/qat.py `load`: cluster-preserving quantizers do not serialize).
REBUILT_QAT = {"cqat": "cluster_preserve", "pcqat": "cluster_prune_preserve"}


def get(name):
    """The Stage called `name`. Raises ValueError naming the known stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; allowed: {', '.join(NAMES)}")
    return STAGES[name]


def stage_dir(workdir, name):
    """WORKDIR/<name> (not created). Raises ValueError for an unknown stage."""
    return os.path.join(workdir, get(name).name)


def model_path(workdir, name):
    """WORKDIR/<name>/model.h5 (may not exist)."""
    return os.path.join(stage_dir(workdir, name), MODEL_FILE)


def has_model(workdir, name):
    return os.path.isfile(model_path(workdir, name))


def read_metrics(workdir, name):
    """WORKDIR/<name>/metrics.json as a dict, or None. Raises UserError when damaged."""
    from tftool import fileio

    return fileio.read_json_object(os.path.join(stage_dir(workdir, name), "metrics.json"),
                                   fix=f"run `{get(name).command} --overwrite` again")


# Written instead of a model when a stage was skipped under make because tfmot cannot take
# the model (cli/shared.py skip_stage): {"stage", "command", "reason", ...}. A later run of the
# stage that goes ahead removes it (stage_runner.py).
SKIPPED_FILE = "skipped.json"


def skipped_path(workdir, name):
    """WORKDIR/<name>/skipped.json (may not exist)."""
    return os.path.join(stage_dir(workdir, name), SKIPPED_FILE)


def read_skipped(workdir, name):
    """The skip record of WORKDIR/<name> (a dict with at least "reason"), or None when the
    stage was not skipped or has a model (a record beside a model is stale). Raises UserError
    when damaged."""
    from tftool import fileio

    if has_model(workdir, name):
        return None
    record = fileio.read_json_object(skipped_path(workdir, name),
                                     fix=f"delete it, or run `{get(name).command}` again")
    return record if record and record.get("reason") else None


def skipped_stages(workdir):
    """{stage: skip record} of the stages WORKDIR has skipped, in registry order."""
    found = {}
    for name in NAMES:
        record = read_skipped(workdir, name)
        if record is not None:
            found[name] = record
    return found


def skipped_summary(workdir):
    """The skipped stages of WORKDIR grouped by cause, for one line: "qat (tfmot cannot
    quantize layer 'mixer' (EinsumDense)); pruned, pqat (tfmot cannot prune layer 'mixer'
    (EinsumDense))", or None when none was skipped."""
    by_cause = {}
    for name, record in skipped_stages(workdir).items():
        by_cause.setdefault(record.get("cause") or record["reason"], []).append(name)
    return "; ".join(f"{', '.join(names)} ({cause})" for cause, names in by_cause.items()) \
        or None


def missing_model_message(workdir, name, needed_by=None):
    """The one line that says a stage's model is missing and which command makes it (and why
    it was skipped, when it was: read_skipped)."""
    stage = get(name)
    why = f"{needed_by} needs" if needed_by else "no model at"
    skipped = read_skipped(workdir, name)
    if skipped:
        return (f"{why} {model_path(workdir, name)}, which `{stage.command}` skipped: "
                f"{skipped['reason']}; {skipped.get('fix') or 'train another model'}")
    return (f"{why} {model_path(workdir, name)}: run `{stage.command} --workdir={workdir}` "
            f"(make {stage.make_target}) first")


def variant_of(name):
    """(stage, mode) of export variant `name`. Raises ValueError naming the known variants."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def fits(variant, model_is_qat):
    """Whether `variant` converts a model of that kind: qat_int8 only from a QAT-wrapped
    model, every other mode only from a plain one."""
    return (variant_of(variant)[1] == "qat_int8") == bool(model_is_qat)
