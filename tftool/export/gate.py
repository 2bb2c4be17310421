"""The accuracy gate: a variant is written only if it is close enough to its reference model.

Accuracies are top-1 fractions in [0, 1] on the whole test split, so max_drop 0.01 is one
percentage point. The reference is the Keras model of the variant's registry `gate` stage
(stages.py): the float model, measured in the same run, for conversions and compressions of
it; the stage's own model (its metrics.json test accuracy) for teacher and students.
"""
import os

from tftool import UserError, stage_runner


def refusal(variant, accuracy, reference_accuracy, max_drop, path, reference):
    """None if `variant` may be written, else the one-line reason.

    Args:
      accuracy, reference_accuracy: top-1 fractions in [0, 1] on the same test split.
      max_drop: largest allowed reference_accuracy − accuracy (fraction; 0.01 = 1 point).
      path: where the variant would go (the line says whether an old file is kept there).
      reference: how the reference model is named in the line.
    """
    drop = reference_accuracy - accuracy
    if drop <= max_drop + 1e-9:  # 1e-9: float noise must not refuse a drop of exactly max_drop
        return None
    kept = (f"kept the existing {path} unchanged" if os.path.exists(path)
            else f"{path} not written")
    return (f"refused {variant}: test accuracy {accuracy:.4f} is {drop * 100:.2f} points below "
            f"{reference}'s {reference_accuracy:.4f} (--max_accuracy_drop={max_drop:g}); {kept}")


def reference(workdir, gate_stage, float_accuracy):
    """(name in messages, top-1 accuracy) of the model a variant is held to.

    Raises:
      UserError: the gate stage's metrics.json is missing or damaged (names the fix).
    """
    if gate_stage == "float":
        return "the float Keras model", float_accuracy
    metrics = stage_runner.read_metrics(workdir, gate_stage)
    if metrics is None or "test_accuracy" not in metrics:
        raise UserError(f"{os.path.join(workdir, gate_stage, 'metrics.json')} is missing or has "
                        f"no test_accuracy; run that stage again with --overwrite")
    return f"its Keras {gate_stage} model", float(metrics["test_accuracy"])
