"""Magnitude pruning with tensorflow-model-optimization (tfmot.sparsity.keras).

Follows Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for
model compression": the smallest-magnitude weights of each selected kernel are set to zero, and
the fraction of zeros rises along a polynomial (cubic) curve from `initial_sparsity` to
`target_sparsity` between `begin_step` and `end_step`, updating the masks every `frequency`
steps; the steps after `end_step` fine-tune at the target sparsity. tfmot's guide:
https://www.tensorflow.org/model_optimization/guide/pruning/comprehensive_guide

Step counting (tfmot 0.8): every wrapped layer keeps `pruning_step`, set to 0 by
`UpdatePruningStep` when training begins and incremented before each training batch, so the
batches of a run see steps 1..total_steps. A mask is recomputed at step s when
begin_step <= s <= end_step and (s - begin_step) % frequency == 0, and PolynomialDecay gives the
target sparsity only at s == end_step. The target is therefore reached only if end_step is at
most total_steps and end_step - begin_step is a multiple of frequency; `schedule_steps` checks
exactly that, so a run cannot silently end at a lower sparsity than asked for.
"""
import dataclasses

from tftool import UserError, jobs

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

# --target_sparsity=auto tries these, mildest first, and keeps the highest whose validation
# accuracy stays within the accuracy gate (tftool/choose.py).
SPARSITY_LADDER = (0.5, 0.6, 0.7, 0.8, 0.9)
# tftool-prune's default target sparsity, 0.7, measured on the development photos (12,000
# CIFAR-10 JPEGs, 2,000 test images; small_cnn width 32 trained 15 epochs, then tftool-prune's
# defaults: 10 epochs from 1e-4, cosine; benchmarks/compress_defaults.py --study=prune,
# seeds 0/1/2), change against the float model in test points [95% paired interval]:
#   0.5: +0.35 [-0.64, +1.34], +0.70 [-0.26, +1.66], +0.15 [-0.77, +1.07]  (within noise)
#   0.7: +0.05 [-1.20, +1.30], +0.75 [-0.48, +1.98], -0.15 [-1.36, +1.06]  (within noise)
#   0.8: -2.35 [-3.78, -0.92], -1.45 [-2.79, -0.11], -1.45 [-2.82, -0.08]  (real losses:
#        each beyond 1 point with its interval excluding zero: the paired gate refuses all)
# So 0.7, the highest sparsity that held on every seed (0.8 measured -2.58 on the 20,000-photo
# development set); README's "Compression defaults" has the table.
# Kinds of layer that --skip_layers can name besides layer names.
#   first_conv  the first convolution sees raw pixels: few weights, much accuracy per weight.
#   last_dense  the logits layer: few weights, each class depends on all of them.
#   depthwise   depthwise kernels have 9 weights per channel; zeroing them removes whole
#               spatial filters and gains little size.
# Batch normalization, pooling and activation layers are never wrapped: they have no kernel.
SKIP_KINDS = ("first_conv", "last_dense", "depthwise")
# tftool-prune's layers left alone: every kind (jobs.DEFAULTS, their one home).
DEFAULT_SKIP = tuple(jobs.DEFAULTS["prune"]["skip_layers"])
# Fraction of the run over which sparsity ramps up when end_step is not given; the rest of the
# steps fine-tune at the target sparsity (Zhu & Gupta 2017 leave the last stretch to recover).
DEFAULT_RAMP_FRACTION = 0.75
# Mask updates over the ramp when frequency is not given (Zhu & Gupta use ~100 per ramp on
# ImageNet; a short digits run has a few hundred steps, so 16 gives a smooth enough curve).
DEFAULT_UPDATES = 16
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A resolved polynomial-decay pruning schedule, in training steps (batches)."""
    initial_sparsity: float
    target_sparsity: float
    begin_step: int
    end_step: int
    frequency: int
    power: float = 3.0

    def as_dict(self):
        """The schedule's fields as a JSON-able dict (metrics.json)."""
        return dataclasses.asdict(self)

    def to_tfmot(self):
        return tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=self.initial_sparsity, final_sparsity=self.target_sparsity,
            begin_step=self.begin_step, end_step=self.end_step, power=self.power,
            frequency=self.frequency)


def schedule_steps(total_steps, initial_sparsity=0.0, target_sparsity=0.7, begin_step=0,
                   end_step=None, frequency=None, power=3.0):
    """Resolves and validates a PolynomialDecay schedule that reaches its target in the run.

    Args:
      total_steps: training batches in the run (steps per epoch × epochs), ≥ 1.
      initial_sparsity, target_sparsity: fractions of zero weights, 0 ≤ initial ≤ target < 1,
        target > 0.
      begin_step: first step of the ramp (0: from the start).
      end_step: step at which `target_sparsity` is reached; None: the last mask update that
        fits in the first DEFAULT_RAMP_FRACTION of the run.
      frequency: steps between mask updates; None: the ramp split into DEFAULT_UPDATES.
      power: exponent of the decay (3 in Zhu & Gupta 2017).
    Returns:
      Schedule with begin_step < end_step ≤ total_steps, (end - begin) % frequency == 0.
    Raises:
      UserError: the schedule cannot reach its target within `total_steps` (names the flag and
        the fix), or the sparsities are out of range.
    """
    if not 0.0 < target_sparsity < 1.0:
        raise UserError(f"--target_sparsity={target_sparsity}: must be in (0, 1)")
    if not 0.0 <= initial_sparsity <= target_sparsity:
        raise UserError(f"--initial_sparsity={initial_sparsity}: must be in [0, "
                        f"--target_sparsity={target_sparsity}]")
    if begin_step < 0:
        raise UserError(f"--pruning_begin_step={begin_step}: must be ≥ 0")
    if frequency is not None and frequency < 1:
        raise UserError(f"--pruning_frequency={frequency}: must be ≥ 1 step")
    if begin_step >= total_steps:
        raise UserError(f"--pruning_begin_step={begin_step} is at or after the run's last step "
                        f"({total_steps} steps); lower it or raise --epochs")
    if end_step is None:
        span = max(0, int(total_steps * DEFAULT_RAMP_FRACTION) - begin_step)
        if frequency is None:
            frequency = max(1, span // DEFAULT_UPDATES)
        end_step = begin_step + frequency * (span // frequency)
        if end_step <= begin_step:
            raise UserError(f"--pruning_frequency={frequency} steps is longer than the pruning "
                            f"ramp ({span} of the run's {total_steps} steps), so sparsity would "
                            f"stay at --initial_sparsity; lower --pruning_frequency or raise "
                            f"--epochs")
    else:
        if end_step > total_steps:
            raise UserError(f"--pruning_end_step={end_step} is after the run's last step "
                            f"({total_steps} steps), so --target_sparsity would never be "
                            f"reached; lower it to ≤ {total_steps} or raise --epochs")
        if end_step <= begin_step:
            raise UserError(f"--pruning_end_step={end_step} must be after "
                            f"--pruning_begin_step={begin_step}")
        if frequency is None:
            frequency = max(1, (end_step - begin_step) // DEFAULT_UPDATES)
            while (end_step - begin_step) % frequency:
                frequency -= 1
        if (end_step - begin_step) % frequency:
            last = begin_step + frequency * ((end_step - begin_step) // frequency)
            raise UserError(f"--pruning_frequency={frequency} does not divide the ramp "
                            f"{begin_step}..{end_step}: the last mask update would be at step "
                            f"{last}, short of --target_sparsity; pick a frequency that divides "
                            f"{end_step - begin_step}")
    return Schedule(float(initial_sparsity), float(target_sparsity), int(begin_step),
                    int(end_step), int(frequency), float(power))


def select_layers(model, skip=DEFAULT_SKIP, purpose="prune"):
    """Names of the layers of `model` that will be pruned.

    Args:
      model: a functional or Sequential tf_keras model.
      skip: kinds from SKIP_KINDS and/or layer names to leave dense.
      purpose: the verb the "nothing left" message uses ("prune"; cluster.py passes
        "cluster").
    Returns:
      list of layer names (Conv2D, DepthwiseConv2D, Dense), in model order.
    Raises:
      UserError: an entry of `skip` is neither a kind nor a layer of the model, or no layer is
        left to prune.
    """
    kernels = [l for l in model.layers if isinstance(l, _KERNEL_LAYERS)]
    convs = [l for l in kernels if isinstance(l, keras.layers.Conv2D)]  # includes depthwise
    denses = [l for l in kernels if isinstance(l, keras.layers.Dense)]
    names = {l.name for l in model.layers}
    skipped = set()
    for entry in skip:
        if entry == "first_conv":
            skipped.update(l.name for l in convs[:1])
        elif entry == "last_dense":
            skipped.update(l.name for l in denses[-1:])
        elif entry == "depthwise":
            skipped.update(l.name for l in kernels
                           if isinstance(l, keras.layers.DepthwiseConv2D))
        elif entry in names:
            skipped.add(entry)
        else:
            raise UserError(f"--skip_layers: {entry!r} is neither a kind "
                            f"({', '.join(SKIP_KINDS)}) nor a layer of {model.name}; layers "
                            f"with kernels: {', '.join(l.name for l in kernels)}")
    selected = [l.name for l in kernels if l.name not in skipped]
    if not selected:
        raise UserError(f"--skip_layers leaves no layer of {model.name} to {purpose}; name fewer")
    return selected


def parse_m_by_n(values):
    """--sparsity_m_by_n as (m, n), or None when not given.

    tftool writes structured pruning to WORKDIR/pruned_2by4 and exports pruned_2by4_int8, so
    only 2:4 (NVIDIA's Ampere pattern, which XNNPACK and sparse kernels also use) is taken.
    Raises: UserError naming the flag for anything else.
    """
    if not values:
        return None
    try:
        pair = tuple(int(v) for v in values)
    except ValueError:
        pair = None
    if pair != (2, 4):
        raise UserError(f"--sparsity_m_by_n={','.join(values)}: only 2,4 is supported (2 zeros "
                        f"in every 4 input-channel weights)")
    return pair


def _check_m_by_n(model, selected, sparsity_m_by_n):
    """Validates (m, n) and that every selected layer can hold an m:n pattern; returns it."""
    if (not isinstance(sparsity_m_by_n, (tuple, list)) or len(sparsity_m_by_n) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in sparsity_m_by_n)
            or not 0 < sparsity_m_by_n[0] < sparsity_m_by_n[1]):
        raise ValueError(f"sparsity_m_by_n={sparsity_m_by_n!r}: must be two integers (m, n) "
                         f"with 0 < m < n, e.g. (2, 4)")
    m, n = sparsity_m_by_n
    for layer in model.layers:
        if layer.name not in selected:
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            raise ValueError(f"layer {layer.name}: m:n pruning needs a Conv2D or Dense kernel; "
                             f"tfmot prunes no weight of a DepthwiseConv2D; skip it "
                             f"(skip kind 'depthwise')")
        kernel = layer.kernel
        if kernel.shape.rank not in (2, 4):
            raise ValueError(f"layer {layer.name}: m:n pruning supports rank-2 (Dense) and "
                             f"rank-4 (Conv2D) kernels, not shape {kernel.shape}")
        channels_in = int(kernel.shape[-2])
        if channels_in % n:
            raise ValueError(f"layer {layer.name} has {channels_in} input channels, not a "
                             f"multiple of n={n}: its last group of {channels_in % n} weights "
                             f"could not hold the {m}:{n} pattern TFLite's sparse kernels "
                             f"expect; skip it (skip=[..., {layer.name!r}])")
    return (m, n)


def apply(model, schedule, skip=DEFAULT_SKIP, sparsity_m_by_n=None):
    """Returns a copy of `model` whose selected layers are wrapped in prune_low_magnitude.

    The input model is not changed (keras.models.clone_model with a clone_function; the clones
    start from the input's weights). Call inside `strategy.scope()`: the wrappers create mask,
    threshold and step variables. Train with tfmot.sparsity.keras.UpdatePruningStep, then
    `strip`.

    Args:
      model: a functional or Sequential tf_keras model, float32 [N, H, W, C] -> [N, K].
      schedule: a Schedule (see `schedule_steps`); may be None with sparsity_m_by_n, which
        ignores it.
      skip: kinds from SKIP_KINDS and/or layer names left dense (see `select_layers`).
      sparsity_m_by_n: None (unstructured, the schedule's sparsity) or (m, n), e.g. (2, 4):
        structured "N:M" sparsity (Mishra et al. 2021, "Accelerating Sparse Deep Neural
        Networks"; tfmot's prune_low_magnitude(sparsity_m_by_n=...)): m zeros in every n
        consecutive weights along the input-channel axis, which is the last axis of the
        TFLite layouts CONV_2D [O, H, W, I] and FULLY_CONNECTED [O, I] that XNNPACK's sparse
        kernels read. tfmot computes the m:n mask once, at the first training step, and then
        fine-tunes the remaining weights with the mask fixed (the schedule is not used).
        Only Conv2D and Dense kernels whose input channels are a multiple of n qualify.
    Raises:
      UserError: see `select_layers`.
      ValueError: a bad sparsity_m_by_n, or a selected layer that cannot hold the pattern
        (depthwise, kernel rank not 2 or 4, input channels not a multiple of n; names it).
    """
    selected = set(select_layers(model, skip))
    if sparsity_m_by_n is not None:
        sparsity_m_by_n = _check_m_by_n(model, selected, sparsity_m_by_n)
        # tfmot ignores the schedule for m:n masks (pruning_impl.conditional_mask_update), but
        # the wrapper still needs one; ConstantSparsity(0.5) is what it would default to.
        pruning_schedule = (schedule.to_tfmot() if schedule is not None else
                            tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0))
    else:
        if schedule is None:
            raise ValueError("schedule=None needs sparsity_m_by_n; pass "
                             "prune.schedule_steps(...) for unstructured pruning")
        pruning_schedule = schedule.to_tfmot()

    def clone(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.name in selected:
            return tfmot.sparsity.keras.prune_low_magnitude(
                fresh, pruning_schedule=pruning_schedule, sparsity_m_by_n=sparsity_m_by_n)
        return fresh

    pruned = keras.models.clone_model(model, clone_function=clone)
    # clone_model starts from fresh weights; copy the input's into each (inner) layer. The
    # wrappers' own mask (ones), threshold and step variables keep their initial values.
    originals = {l.name: l for l in model.layers}
    for layer in pruned.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name in originals and inner.weights:
            inner.set_weights(originals[inner.name].get_weights())
    return pruned


def is_m_by_n(kernel, m=2, n=4, axis=-2):
    """Whether every n consecutive weights along `axis` hold at least m zeros.

    Args:
      kernel: numpy array, any float or int dtype. Keras layouts by default: Conv2D
        [H, W, I, O] and Dense [I, O], whose input-channel axis is -2; pass axis=-1 for the
        TFLite layouts CONV_2D [O, H, W, I] and FULLY_CONNECTED [O, I].
      m, n: the pattern, 0 < m < n (2, 4: "2:4").
      axis: the axis the groups run along.
    Returns:
      bool. A group cut short by an axis length that is not a multiple of n counts as if
      padded with zeros (tfmot's own check, pruning_utils.is_pruned_m_by_n, does the same);
      an axis of length 0 gives True.
    Raises:
      ValueError: not 0 < m < n.
    """
    if not 0 < m < n:
        raise ValueError(f"m={m}, n={n}: need 0 < m < n")
    values = np.moveaxis(np.asarray(kernel), axis, -1)
    length = values.shape[-1]
    pad = (-length) % n
    if pad:
        values = np.concatenate([values, np.zeros(values.shape[:-1] + (pad,), values.dtype)],
                                axis=-1)
    groups = values.reshape(-1, n)
    return bool(np.all(np.count_nonzero(groups, axis=-1) <= n - m))


def callbacks(log_dir):
    """The callbacks a pruning run needs: the step counter and sparsity summaries (TensorBoard).

    UpdatePruningStep must run in every fit() of a wrapped model (tfmot asserts it).
    """
    return [tfmot.sparsity.keras.UpdatePruningStep(),
            tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir)]


def strip(model):
    """A copy of `model` without pruning wrappers, kernels holding mask × weights (zeros kept).

    Call inside the scope of the strategy that built `model`.
    """
    return tfmot.sparsity.keras.strip_pruning(model)


def layer_sparsity(model):
    """Fraction of exactly-zero kernel weights per layer, for layers with a kernel.

    Works on stripped and on wrapped models (a wrapper reports its inner layer's kernel).
    Returns:
      {layer name: float in [0, 1]} in model order (Conv2D, DepthwiseConv2D, Dense).
    """
    result = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if not isinstance(inner, _KERNEL_LAYERS):
            continue
        kernel = getattr(inner, "depthwise_kernel", None)
        if kernel is None:
            kernel = inner.kernel
        result[inner.name] = float(np.mean(np.asarray(kernel) == 0))
    return result


def overall_sparsity(model, layers):
    """Fraction of zero weights over the kernels of `layers` together (weighted by size)."""
    zeros = total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name not in layers:
            continue
        kernel = getattr(inner, "depthwise_kernel", None)
        kernel = np.asarray(inner.kernel if kernel is None else kernel)
        zeros += int(np.sum(kernel == 0))
        total += kernel.size
    return zeros / total if total else 0.0
