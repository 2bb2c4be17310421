"""Mixed precision for training, and float32 models for everything that is saved.

Follows https://www.tensorflow.org/guide/mixed_precision: a mixed policy computes in a 16-bit
float type and keeps variables in float32; the logits layer is built with dtype float32
(models/) so the softmax/cross-entropy is computed in float32.

Which 16-bit type (`policy_for_this_machine`):
  - GPU: `mixed_float16` (tensor cores); tf_keras `compile` wraps the optimizer in a
    LossScaleOptimizer by itself under this policy.
  - CPU with native bfloat16 instructions (x86 AVX512_BF16 or AMX_BF16) and oneDNN on (the
    default of TensorFlow's Linux x86 wheels): `mixed_bfloat16`. bfloat16 has float32's
    exponent range, so no loss scaling is needed (the guide's "Supported hardware" section;
    Intel's oneDNN runs bfloat16 convolutions and matmuls natively on these CPUs).
    Measured on this project's 2-core AVX512_BF16 machine (benchmarks/train_throughput.py):
    small_cnn at 28 px trains ~1.4× faster than float32; MobileNetV2 at 96 px trains ~1.7×
    *slower* (oneDNN's bfloat16 depthwise convolutions), so it is a per-model choice.
  - Any other CPU: refused (float16/bfloat16 are emulated there and slower than float32).

The default (`--mixed_precision` not given, `mixed=None`) is `auto_policy`: mixed_bfloat16
where it was measured faster — a model in CPU_BFLOAT16_MODELS on a CPU with native bfloat16
— and float32 everywhere else, GPUs included (no GPU was measured for this project; pass
--mixed_precision there, recipes/multi_gpu_vm.sh times both). `--nomixed_precision` forces
float32.

A model trained this way still carries the policy in its layer configs; `to_float32` rebuilds
it with float32 layers and the same (float32) weights, so model.h5, the .tflite files and the
benchmark never compute in float16 (the float16 *export* variant is a separate, weight-only
choice in convert.py).
"""
import contextlib
import os

from tftool import UserError

import tensorflow as tf
import tf_keras as keras

MIXED = "mixed_float16"
MIXED_BFLOAT16 = "mixed_bfloat16"
# /proc/cpuinfo flags of x86 CPUs whose instructions compute bfloat16 dot products natively.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
# Models the default picks mixed_bfloat16 for on such a CPU: measured faster than float32
# (benchmarks/train_throughput.py, 2-core AVX512_BF16, 7,190 28x28 digits, batch 64: small_cnn
# 1,833 vs 1,285 images/s of a plain float32 model.fit, 1.43×; test accuracy within one
# image of float32's, README.md). mobilenet_v2 is left out: 0.57× there (oneDNN's bfloat16
# depthwise convolutions).
# airbench: 1,003 vs 826 images/s (1.21×) at 32x32, batch 256, random inputs, on the 2-core
# AMD EPYC with AVX512_BF16 (docs/photo_recipe.md, "Speed").
CPU_BFLOAT16_MODELS = ("small_cnn", "airbench")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU feature flags the Linux kernel reports (a set of str; empty where there is no
    /proc/cpuinfo, e.g. macOS, so such machines count as having no bfloat16 instructions)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def onednn_enabled():
    """Whether TensorFlow's oneDNN kernels are on (TF_ENABLE_ONEDNN_OPTS unset or not 0: the
    default of the Linux x86 wheels since TF 2.9); the bfloat16 fast path is oneDNN's."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


def policy_for_this_machine():
    """The mixed policy with a fast path here: "mixed_float16" with a GPU, "mixed_bfloat16" on
    a CPU with CPU_BFLOAT16_FLAGS and oneDNN on.

    Raises:
      UserError: neither (names the missing instructions and the fix: drop the flag).
    """
    if tf.config.list_physical_devices("GPU"):
        return MIXED
    if not has_cpu_bfloat16():
        raise UserError("--mixed_precision needs a GPU or a CPU with bfloat16 instructions "
                        "(AVX512_BF16 or AMX_BF16; this one has neither, and emulated 16-bit "
                        "math is slower than float32); drop the flag on this machine")
    if not onednn_enabled():
        raise UserError("--mixed_precision on a CPU runs bfloat16 through oneDNN, which "
                        "TF_ENABLE_ONEDNN_OPTS=0 turns off; unset it or drop the flag")
    return MIXED_BFLOAT16


def has_cpu_bfloat16():
    """Whether this CPU reports one of CPU_BFLOAT16_FLAGS."""
    return bool(cpu_flags() & set(CPU_BFLOAT16_FLAGS))


def auto_policy(model_name):
    """The policy of the default (--mixed_precision not given) for model `model_name` here:
    "mixed_bfloat16" for a model in CPU_BFLOAT16_MODELS on a GPU-less machine whose CPU has
    CPU_BFLOAT16_FLAGS with oneDNN on; "float32" otherwise (GPUs included: unmeasured here)."""
    if (model_name in CPU_BFLOAT16_MODELS and not tf.config.list_physical_devices("GPU")
            and has_cpu_bfloat16() and onednn_enabled()):
        return MIXED_BFLOAT16
    return "float32"


def policy_name(mixed, model_name=None):
    """The dtype policy a training run asks for: policy_for_this_machine() if `mixed` is True,
    "float32" if False, auto_policy(model_name) if None (the flag's default).

    Raises:
      UserError: `mixed` True on a machine with no 16-bit fast path (see
        policy_for_this_machine): refused rather than silently making the run slower.
    """
    if mixed is None:
        return auto_policy(model_name)
    return policy_for_this_machine() if mixed else "float32"


def set_policy(mixed, model_name=None):
    """Sets the global Keras dtype policy to policy_name(mixed, model_name) and returns it.

    Call before any model is built. Raises what policy_name raises (nothing is set then).
    """
    name = policy_name(mixed, model_name)
    keras.mixed_precision.set_global_policy(name)
    return name


@contextlib.contextmanager
def _global_policy(name):
    """The global Keras dtype policy `name` for the `with` block, then the one before it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(previous)


def policy_for_training(mixed, model_name=None):
    """A context manager: policy_name(mixed, model_name) as the global policy for the `with`
    block, then the policy from before it (so a mixed policy never leaks into the models a
    later stage or test builds in this process). Yields the policy's name.
    Raises what policy_name raises (at the call, before anything is set)."""
    return _global_policy(policy_name(mixed, model_name))


def is_float32(model):
    return all(layer.dtype_policy.name == "float32" for layer in model.layers)


def _float32_config(obj):
    # A layer config stores a non-default policy as {"class_name": "Policy", "config": {...}}.
    if isinstance(obj, dict):
        if obj.get("class_name") in ("Policy", "DTypePolicy") and "config" in obj:
            return "float32"
        return {k: _float32_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj


def to_float32(model):
    """Returns `model` rebuilt with float32 layers and the same weights (or `model` itself).

    Args:
      model: a functional tf_keras model, possibly built under a mixed policy (its variables are
        float32 either way, so the weights copy over unchanged).
    Returns:
      a functional model that computes in float32: float32 [N, H, W, C] -> float32 [N, K].
    """
    if is_float32(model):
        return model
    import tensorflow_model_optimization as tfmot

    with _global_policy("float32"), tfmot.quantization.keras.quantize_scope():
        clone = type(model).from_config(_float32_config(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone
