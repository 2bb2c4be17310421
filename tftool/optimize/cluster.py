"""Weight clustering (weight sharing) with tensorflow-model-optimization (tfmot.clustering.keras).

Follows Han, Mao & Dally 2016, "Deep Compression" (k-means weight sharing) as implemented by
tfmot: each selected kernel is replaced by `number_of_clusters` trainable centroids and an index
per weight (nearest centroid); fine-tuning trains the centroids, and `strip` writes a plain
kernel that holds only centroid values. BatchNormalization is folded into the kernels first
(fold.py), so the stored kernel has at most `number_of_clusters` distinct floats (per output
channel with `per_channel=True`); exported with one int8 scale per kernel (convert's
"int8_per_tensor"), it still holds at most that many int8 values, which gzip compresses well.
Guides:
  https://www.tensorflow.org/model_optimization/guide/clustering/clustering_comprehensive_guide
  https://www.tensorflow.org/model_optimization/guide/combine/sparsity_preserving_clustering_example
  (prune -> cluster with preserve_sparsity=True keeps the zeros; then CQAT/PCQAT in qat.py).

Which layers: Conv2D, Dense (their `kernel`); the biases, batch normalization and depthwise
kernels stay float (tfmot's ClusteringRegistry lists no clusterable weight for
DepthwiseConv2D). Selection reuses prune.select_layers' kinds (first_conv, last_dense,
depthwise) and layer names.
"""
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tftool import jobs
from tftool.optimize import fold, prune

# tfmot's CentroidInitialization members, by the lower-case names tftool accepts.
CENTROID_INITS = {
    "kmeans_plus_plus": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    "density_based": tfmot.clustering.keras.CentroidInitialization.DENSITY_BASED,
    "linear": tfmot.clustering.keras.CentroidInitialization.LINEAR,
    "random": tfmot.clustering.keras.CentroidInitialization.RANDOM,
}
# tftool-cluster's layers left alone (jobs.DEFAULTS, their one home, says why).
DEFAULT_SKIP = tuple(jobs.DEFAULTS["cluster"]["skip_layers"])
_CLUSTERABLE = (keras.layers.Conv2D, keras.layers.Dense)


def _wrapper_class():
    # tfmot's own per-channel check skips every bias-free Conv2D (internals.py says why);
    # `_check_enough_weights` does the check instead.
    from tftool import internals

    return internals.tfmot_cluster_wrapper()


def _kernel(layer):
    return np.asarray(layer.kernel)


def _check_enough_weights(layer, number_of_clusters, per_channel):
    kernel = _kernel(layer)
    per_cluster_set = kernel.size // kernel.shape[-1] if per_channel else kernel.size
    if per_cluster_set <= number_of_clusters:
        unit = "per output channel" if per_channel else "in its kernel"
        raise ValueError(f"layer {layer.name} has {per_cluster_set} weights {unit}, not more "
                         f"than number_of_clusters={number_of_clusters}: clustering cannot "
                         f"shrink it; skip it (skip=[..., {layer.name!r}]) or use fewer clusters")


def validate(number_of_clusters, cluster_centroids_init, preserve_sparsity=False):
    """Checks the clustering options; returns tfmot's CentroidInitialization member.

    Raises:
      ValueError: number_of_clusters not an int ≥ 2 (≥ 3 with preserve_sparsity: tfmot keeps
        one centroid pinned at zero), or an init not in CENTROID_INITS (lists them).
    """
    minimum = 3 if preserve_sparsity else 2
    if isinstance(number_of_clusters, bool) or not isinstance(number_of_clusters, int) \
            or number_of_clusters < minimum:
        raise ValueError(f"number_of_clusters={number_of_clusters!r}: must be an integer ≥ "
                         f"{minimum}" + (" with preserve_sparsity (one centroid is the "
                                          "pinned zero)" if preserve_sparsity else ""))
    if cluster_centroids_init not in CENTROID_INITS:
        raise ValueError(f"unknown cluster_centroids_init {cluster_centroids_init!r}; allowed: "
                         f"{', '.join(CENTROID_INITS)}")
    return CENTROID_INITS[cluster_centroids_init]


def select_layers(model, skip=DEFAULT_SKIP):
    """Names of the layers of `model` that `apply` clusters: prune.select_layers' choice
    (kinds and names in `skip`) without DepthwiseConv2D, which has no clusterable weight.

    Raises:
      UserError: an entry of `skip` is neither a kind nor a layer, or nothing is left.
    """
    chosen = prune.select_layers(model, skip, purpose="cluster")
    layers = {l.name: l for l in model.layers}
    return [n for n in chosen if not isinstance(layers[n], keras.layers.DepthwiseConv2D)]


def apply(model, number_of_clusters=16, cluster_centroids_init="linear",
          per_channel=False, preserve_sparsity=False, skip=DEFAULT_SKIP):
    """Returns a copy of `model`, its BatchNormalization layers folded into the layers before
    them (fold.fold_batchnorm), whose selected layers are wrapped in tfmot's ClusterWeights.

    Folding first makes the clustered kernels the ones the .tflite stores: the converter would
    otherwise fold BN after clustering and scale each output channel's centroids by its own
    factor (fold.py's docstring has the measurement). The result has no BN layers.
    The input model is not changed: every layer is rebuilt from its config with the input's
    weights (keras.models.clone_model with a clone_function), and a selected layer gets its
    weights *before* it is wrapped, because the wrapper initializes the centroids from the
    kernel it finds when it is built. Call inside `strategy.scope()`: the wrappers create the
    centroid and index variables. Fine-tune (a few epochs, a learning rate ~10x below the
    float run's, as tfmot's guide does), then `strip`.

    Args:
      model: a functional or Sequential tf_keras model, float32 [N, H, W, C] -> [N, K].
      number_of_clusters: centroids per kernel (per output channel with per_channel), int ≥ 2
        (≥ 3 with preserve_sparsity).
      cluster_centroids_init: one of CENTROID_INITS ("kmeans_plus_plus", "density_based",
        "linear", "random"; tfmot's CentroidInitialization). Default "linear", the choice
        of tfmot's clustering example: centroids evenly spaced over the weight range, so the
        bell-shaped weights fill the middle clusters most and the stored kernel has lower
        entropy. Measured (small_cnn width 32, digits, 16 clusters): gzip 0.52× plain int8's
        at the float accuracy, against 0.61× (+1 test image) with kmeans_plus_plus, whose
        clusters are filled about equally (~4 bits per weight).
      per_channel: cluster each output channel of a Conv2D separately (tfmot's
        cluster_per_channel; Dense layers are clustered per kernel): int8 quantizes conv
        kernels per channel, so clustering per channel loses less accuracy, for up to
        number_of_clusters × channels distinct values per kernel.
      preserve_sparsity: keep the zeros of a pruned model zero (tfmot's sparsity-preserving
        clustering, tfmot's "collaborative optimization" guide): one centroid is pinned at
        0 and the zero mask is fixed.
      skip: kinds from prune.SKIP_KINDS and/or layer names left unclustered.
    Raises:
      ValueError: bad number_of_clusters or init (see `validate`), or a selected layer with
        no more weights (per channel with per_channel) than clusters (names the layer).
      UserError: see `select_layers`.
    """
    init = validate(number_of_clusters, cluster_centroids_init, preserve_sparsity)
    model = fold.fold_batchnorm(model)
    selected = set(select_layers(model, skip))
    originals = {l.name: l for l in model.layers}
    for name in selected:
        _check_enough_weights(originals[name], number_of_clusters,
                              per_channel and isinstance(originals[name], keras.layers.Conv2D))
    wrapper = _wrapper_class()

    def clone(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.name not in selected:
            return fresh
        fresh.build(layer.input_shape)
        fresh.set_weights(layer.get_weights())
        return wrapper(fresh, number_of_clusters, init, preserve_sparsity=preserve_sparsity,
                       cluster_per_channel=per_channel)

    clustered = keras.models.clone_model(model, clone_function=clone)
    for layer in clustered.layers:  # the unselected layers start from fresh weights
        if layer.name in originals and layer.name not in selected and layer.weights:
            layer.set_weights(originals[layer.name].get_weights())
    return clustered


def strip(model):
    """A copy of `model` without clustering wrappers: plain layers whose kernels hold only
    centroid values (tfmot's strip_clustering). Call in the scope that built `model`."""
    return tfmot.clustering.keras.strip_clustering(model)


def unique_values(model, per_channel=False):
    """Distinct kernel values per clusterable layer of a stripped model.

    Args:
      model: a tf_keras model without clustering wrappers (after `strip`).
      per_channel: count per output channel (last kernel axis) and report the largest count.
    Returns:
      {layer name: int} for Conv2D (not depthwise) and Dense layers, in model order.
    Raises:
      ValueError: the model still holds ClusterWeights wrappers (their kernels are
        recomputed in the forward pass; strip first).
    """
    result = {}
    for layer in model.layers:
        if type(layer).__name__.startswith("ClusterWeights"):
            raise ValueError(f"layer {layer.name} is still wrapped for clustering; call "
                             f"cluster.strip(model) first")
        if not isinstance(layer, _CLUSTERABLE) or isinstance(layer,
                                                              keras.layers.DepthwiseConv2D):
            continue
        kernel = _kernel(layer)
        if per_channel:
            flat = kernel.reshape(-1, kernel.shape[-1])
            result[layer.name] = max(len(np.unique(flat[:, c])) for c in range(flat.shape[1]))
        else:
            result[layer.name] = len(np.unique(kernel))
    return result
