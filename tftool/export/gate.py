"""The accuracy gate: a variant is written only if it is not really worse than its reference.

Each variant is compared with its reference model image by image on the whole test split
(stats.paired_drop: the images only one of the two gets right, McNemar 1947; the 95% interval of
the drop, Newcombe 1998). `--gate` picks the rule (stats.gate_refuses):
  paired    (default) refuse when the drop exceeds --max_accuracy_drop and its interval
            excludes zero: a real drop beyond the tolerance, not noise;
  confident refuse only when the whole interval lies above --max_accuracy_drop;
  point     refuse when the point drop exceeds --max_accuracy_drop (the rule before intervals).
Accuracies are top-1 fractions, so max_drop 0.01 is one percentage point. The reference is the
Keras model of the variant's registry `gate` stage (stages.py): the float model for conversions
and compressions of it, the stage's own model for teacher and students.

The gate checks a variant; it chooses nothing, so it reads the test split. What chooses
(selective int8's layers, --target_sparsity=auto, the search) reads the validation split.
"""
import os

from tftool import stages, stats


def refusal(variant, paired, max_drop, path, reference, rule="paired"):
    """None if `variant` may be written, else the one-line reason.

    Args:
      paired: stats.Paired, the reference model vs the variant on the same test images.
      max_drop: largest tolerated drop (fraction; 0.01 = 1 point).
      path: where the variant would go (the line says whether an old file is kept there).
      reference: how the reference model is named in the line.
      rule: stats.GATE_RULES.
    Raises: ValueError: an unknown rule.
    """
    if not stats.gate_refuses(paired, max_drop, rule):
        return None
    kept = (f"kept the existing {path} unchanged" if os.path.exists(path)
            else f"{path} not written")
    accuracy = (paired.both + paired.only_other) / paired.n
    reference_accuracy = (paired.both + paired.only_reference) / paired.n
    return (f"refused {variant}: test accuracy {accuracy:.4f} is {paired.drop * 100:.2f} points "
            f"below {reference}'s {reference_accuracy:.4f} (95% interval of the drop "
            f"[{paired.low * 100:.2f}, {paired.high * 100:.2f}] points; "
            f"{paired.only_reference} of {paired.n} images only the reference gets right, "
            f"{paired.only_other} only {variant}; --gate={rule} "
            f"--max_accuracy_drop={max_drop:g}); {kept}")


def reference_stage(variant_stage):
    """The stage whose Keras model a variant of `variant_stage` is held to (the registry's
    `gate`: float for conversions and compressions, the stage itself for other models)."""
    return stages.get(variant_stage).gate


def reference_name(gate_stage):
    """How messages and cards name the reference model of `gate_stage`."""
    return "the float Keras model" if gate_stage == "float" else f"its Keras {gate_stage} model"


def section(paired, rule, max_drop, reference, float_accuracy):
    """The model card's "accuracy_gate" section: the rule, the reference and the paired
    comparison (drop and its 95% interval in fractions)."""
    return {"rule": rule, "max_accuracy_drop": max_drop, "reference": reference,
            "reference_accuracy": (paired.both + paired.only_reference) / paired.n,
            "float_accuracy": float_accuracy, "drop": paired.drop,
            "drop_interval": [paired.low, paired.high], "within_noise": paired.within_noise,
            "only_reference": paired.only_reference, "only_variant": paired.only_other,
            "examples": paired.n}
