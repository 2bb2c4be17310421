"""Re-estimates BatchNormalization's moving statistics after training ("precise BN").

Why: at inference a BN layer (Ioffe & Szegedy 2015, "Batch Normalization", §3.1) normalizes
with its moving mean and variance, an exponential average updated once per training step
with `momentum`. The average forgets its initial values (mean 0, variance 1) only after
about 1 / (1 − momentum) steps: 1,000 for keras.applications' 0.999 (MobileNetV2, Sandler
et al. 2018). A 2-epoch run of 250 steps keeps 0.999^250 = 78% of the initial values, so the
statistics describe no weights the model ever had, and test accuracy falls to chance while
training accuracy (batch statistics) looks fine. Fine-tuning (QAT, pruning) has the same lag.

Fix: after training, forward N batches of training images through the model in training mode
(each BN normalizes with its batch statistics, exactly as during training) and set every BN's
moving statistics to the population mean and variance of its inputs over those batches — the
"precise BN" of Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm", §3), which also
appears in Ioffe & Szegedy 2015, Alg. 2, step 10 (inference statistics over the training
set, E[x] and m/(m−1)·E_B[σ²_B]). The result no longer depends on momentum or on the number of
steps, so one fix serves short and long schedules and every stage.
"""
from tftool import internals

import numpy as np
import tensorflow as tf
import tf_keras as keras

# Batches forwarded by default: 50 of 64 = 3,200 images (capped at one pass over the train
# split). Measured on the digits folder (benchmarks/bn_statistics.py, MobileNetV2 0.35 at
# 96 px): 5, 20 and 67 batches gave test accuracy 0.930, 0.933, 0.933 after 2 epochs and
# 20 vs 67 batches 0.978 vs 0.981 after 6; Wu & Johnson 2021 (Fig. 3) see precise BN
# saturate near 10^4 images on ImageNet's 1,000 classes. 50 keeps the sample (held as uint8)
# at 246 MB for 160-px RGB images.
DEFAULT_BATCHES = 50


def batchnorm_layers(model):
    """[(graph layer, BatchNormalization, input tensor)]: every BN of a functional model, in
    graph order.

    The graph layer is the BN itself or the wrapper that holds it (tfmot's QuantizeWrapper,
    PruneLowMagnitude: `.layer`); the input tensor is its input in `model`'s own graph (a
    layer reused by a clone, as tfmot's strip_pruning does, has one node per graph).
    Raises:
      ValueError: a BN inside a nested model or used at more than one place in the graph (its
        input is not one tensor).
    """
    found = []
    for layer in model.layers:
        inner = layer
        while not isinstance(inner, keras.layers.BatchNormalization) and hasattr(inner, "layer"):
            inner = inner.layer
        if isinstance(inner, keras.layers.BatchNormalization):
            tensor = internals.input_in_model(model, layer)
            if tensor is None:
                raise ValueError(f"BatchNormalization {layer.name!r} is used "
                                 f"{len(layer.inbound_nodes)} times; cannot re-estimate it")
            found.append((layer, inner, tensor))
        elif isinstance(layer, keras.Model) and batchnorm_layers(layer):
            raise ValueError(f"model {model.name!r} nests model {layer.name!r} with "
                             f"BatchNormalization layers; flatten it (input_tensor=...)")
    return found


def _reduction_axes(rank, bn_axis):
    axes = [bn_axis] if isinstance(bn_axis, int) else list(bn_axis)
    axes = [a % rank for a in axes]
    return [i for i in range(rank) if i not in axes]


def reestimate(model, batches, num_batches=DEFAULT_BATCHES):
    """Sets every BN's moving mean and variance to its inputs' statistics over `batches`.

    Args:
      model: a functional tf_keras model (tfmot-wrapped layers allowed) taking float32
        [n, H, W, C] images.
      batches: iterable of float32 [n, H, W, C] images or (images, labels) pairs: training
        images preprocessed as at test time (no augmentation), shuffled, each of the training
        batch size (the per-batch statistics the layers saw in training depend on it).
      num_batches: how many to use, ≥ 1 (fewer if `batches` ends first).
    Returns:
      the number of BN layers set (0: the model has none; nothing is run).
    Effects: only BN moving statistics change. The forward pass runs in training mode, which
      also moves other state (BN's own moving averages, QAT's activation ranges, pruning
      masks); every non-trainable variable is saved before and restored after.
    Raises:
      ValueError: num_batches < 1, `batches` is empty, or see batchnorm_layers.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches={num_batches}: must be ≥ 1")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    taps = keras.Model(model.inputs, [tensor for _, _, tensor in layers])
    axes = [_reduction_axes(len(tensor.shape), bn.axis) for _, bn, tensor in layers]

    @tf.function
    def moments(images):
        # Training mode: every BN normalizes with batch statistics, as it did in training.
        outputs = taps(images, training=True)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [(tf.reduce_mean(tf.cast(x, tf.float32), a),
                 tf.reduce_mean(tf.square(tf.cast(x, tf.float32)), a))
                for x, a in zip(outputs, axes)]

    saved = [(v, v.numpy()) for v in model.non_trainable_variables]
    sums, squares, seen = None, None, 0
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        result = moments(images)
        means = [m.numpy().astype(np.float64) for m, _ in result]
        sq = [s.numpy().astype(np.float64) for _, s in result]
        if sums is None:
            sums, squares = means, sq
        else:
            sums = [a + b for a, b in zip(sums, means)]
            squares = [a + b for a, b in zip(squares, sq)]
        seen += 1
        if seen >= num_batches:
            break
    if seen == 0:
        raise ValueError("no batches to re-estimate BatchNormalization statistics from")
    for variable, value in saved:
        variable.assign(value)
    # Equal-size batches: the average of per-batch E[x] and E[x²] are the population moments;
    # variance = E[x²] − E[x]² (biased; the m/(m−1) correction is < 0.1% at m ≥ 1,000
    # values per channel per batch).
    for (_, bn, _), total, total_sq in zip(layers, sums, squares):
        mean = total / seen
        variance = np.maximum(total_sq / seen - mean ** 2, 0.0)
        bn.moving_mean.assign(mean.astype(bn.moving_mean.dtype.as_numpy_dtype))
        bn.moving_variance.assign(variance.astype(bn.moving_variance.dtype.as_numpy_dtype))
    return len(layers)
