"""Quantization-aware training (QAT) wrappers from tensorflow-model-optimization.

Follows https://www.tensorflow.org/model_optimization/guide/quantization/training and
Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference". The wrapped model simulates int8 weights (per-channel)
and activations (per-tensor) in its forward pass, so fine-tuning adapts to the rounding
that the TFLite int8 model will do.
"""
import tensorflow_model_optimization as tfmot
import tf_keras as keras

SCHEMES = ("default", "prune_preserve", "cluster_preserve", "cluster_prune_preserve")

# Layers tfmot's 8-bit registry lacks that tftool quantizes anyway, with tfmot's own
# output-only config (int8 output, float math inside: an affine op TFLite runs as int8 MUL/ADD).
# Rescaling is mobilenet_v2's [0, 1] -> [-1, 1] input layer; without this, quantize_model
# raises "Layer to_minus1_1 ... is not supported".
OUTPUT_ONLY_LAYERS = ("Rescaling",)


def annotate(model):
    """quantize_annotate_model(model), with OUTPUT_ONLY_LAYERS annotated by
    Default8BitOutputQuantizeConfig instead of tfmot's registry."""
    from tftool import internals

    configs = internals.tfmot_quantize_configs()

    q = tfmot.quantization.keras

    def annotate_extra(layer):
        if type(layer).__name__ in OUTPUT_ONLY_LAYERS:
            return q.quantize_annotate_layer(layer, configs.Default8BitOutputQuantizeConfig())
        return layer

    if not any(type(l).__name__ in OUTPUT_ONLY_LAYERS for l in model.layers):
        return q.quantize_annotate_model(model)
    partly = keras.models.clone_model(model, clone_function=annotate_extra)
    partly.set_weights(model.get_weights())
    return q.quantize_annotate_model(partly)


def get_scheme(scheme):
    """The tfmot QuantizeScheme object of `scheme` (one of SCHEMES). Raises ValueError.

    The collaborative-optimization schemes come from tfmot's public
    tfmot.experimental.combine (https://www.tensorflow.org/model_optimization/guide/combine/
    collaborative_optimization):
      prune_preserve          PQAT, Default8BitPrunePreserveQuantizeScheme (pqat_example).
      cluster_preserve        CQAT, Default8BitClusterPreserveQuantizeScheme(
                              preserve_sparsity=False) (cqat_example), with per-tensor conv
                              weights and one weight quantizer per layer (see
                              _cluster_preserve_scheme).
      cluster_prune_preserve  PCQAT, the same with preserve_sparsity=True (pcqat_example).
    """
    if scheme == "default":
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    if scheme == "prune_preserve":
        return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    if scheme == "cluster_preserve":
        return _cluster_preserve_scheme(preserve_sparsity=False)
    if scheme == "cluster_prune_preserve":
        return _cluster_preserve_scheme(preserve_sparsity=True)
    raise ValueError(f"unknown QAT scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")


def _cluster_preserve_scheme(preserve_sparsity):
    """tfmot's Default8BitClusterPreserveQuantizeScheme with three changes, each measured on
    tfmot 0.8.1:

    1. Per-tensor Conv2D weights (the base config from tfmot's
       Default8BitQuantizeScheme(disable_per_axis=True); DepthwiseConv2D stays per channel).
       A clustered kernel (BN folded first, cluster.apply) holds number_of_clusters
       floats; one scale per kernel maps them to at most that many int8 codes, so the
       .tflite kernel keeps its clusters (the clustering target: ≤ 16 values per kernel).
       Per-channel scales map the same centroid to a different code in every output
       channel (measured: 41-60 distinct int8 values per 16-cluster kernel), which is what
       gzip then cannot compress.
    2. One weight-quantizer object per layer. tfmot's registry hands one object per config
       class to all layers, and the quantizer's build turns its own `preserve_sparsity` off
       for good when a layer has no zero weight ("Input layer does not contain zero weights,
       so apply CQAT instead"). With an unpruned first conv (tftool's default) every later
       conv then loses its sparsity in training (measured: 0.80 -> 0.05 on small_cnn's
       conv1_1).
    3. One centroid set per kernel (internals.tfmot_per_tensor_centroids): tfmot otherwise
       gives a Conv2D per-channel centroids when its channels hold equally many values, and
       trains them apart (a kernel of 8 clusters left QAT with 58 values, 8 per channel).

    The registry and quantizer classes are only in tfmot's internal module (the public
    tfmot.experimental.combine has only the scheme). Saved CQAT/PCQAT models, tfmot's or
    these, load only with `load` (see there).
    """
    from tftool import internals

    registry = internals.tfmot_cluster_preserve_registry()
    default_8bit = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme
    info = registry.ClusterPreserveQuantizeRegistry._LAYERS_CONFIG_MAP[keras.layers.Conv2D]

    class PerKernelQuantizer(registry.ClusterPreserveDefault8BitWeightsQuantizer):
        def _build_clusters(self, name, layer):
            with internals.tfmot_per_tensor_centroids():
                return super()._build_clusters(name, layer)

    class PerLayerRegistry(registry.Default8bitClusterPreserveQuantizeRegistry):
        # Conv2D's per-tensor base config is Default8BitQuantizeConfig, which tfmot's map
        # accepts only for Dense.
        _LAYERS_CONFIG_MAP = {
            **registry.ClusterPreserveQuantizeRegistry._LAYERS_CONFIG_MAP,
            keras.layers.Conv2D: type(info)(info.weight_attrs, ["Default8BitQuantizeConfig"]),
        }

        def __init__(self, preserve_sparsity):
            super().__init__(preserve_sparsity)
            self._preserve_sparsity = preserve_sparsity

        def get_quantize_config(self, layer):
            self._config_quantizer_map = {
                "Default8BitQuantizeConfig": PerKernelQuantizer(self._preserve_sparsity),
            }
            # Per-tensor for Conv2D only: DepthwiseConv2D is never clustered, and per-tensor
            # depthwise weights are MobileNet's known int8 accuracy loss. A new base registry
            # per layer, as tfmot's own get_quantize_config makes: a registry hands the same
            # config object to every layer of a class, and the weight quantizer is set on it.
            base = default_8bit(disable_per_axis=type(layer) is keras.layers.Conv2D)
            return self.apply_cluster_preserve_quantize_config(
                layer, base.get_quantize_registry().get_quantize_config(layer))

    class PerLayerScheme(tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme):
        def get_quantize_registry(self):
            return PerLayerRegistry(self.preserve_sparsity)

    return PerLayerScheme(preserve_sparsity=preserve_sparsity)


def apply(model, scheme="default"):
    """Returns a QAT-wrapped copy of functional/sequential `model` (the input is not changed).

    Call inside `strategy.scope()`: the wrappers create variables.

    Args:
      model: a functional or Sequential tf_keras model, float32 [N, H, W, C] -> [N, K].
      scheme: "default" (8-bit, tfmot's Default8BitQuantizeScheme), "prune_preserve"
        (Default8BitPrunePreserveQuantizeScheme: keeps zero weights zero, for pruned models;
        see https://www.tensorflow.org/model_optimization/guide/combine/pqat_example),
        "cluster_preserve" (CQAT: a stripped clustered model keeps its centroids, so each
        kernel keeps ≤ number_of_clusters values after int8; cqat_example) or
        "cluster_prune_preserve" (PCQAT: a pruned-then-clustered model keeps both its
        zeros and its centroids; pcqat_example). Pass the *stripped* clustered model
        (cluster.strip): the scheme re-derives the centroids from the kernel's unique values.
    Raises:
      ValueError: unknown scheme (lists the allowed ones); tfmot's own ValueError/RuntimeError
        for a layer it cannot quantize (tftool.check.unsupported_layers lists them all first).
    Layers in OUTPUT_ONLY_LAYERS get tfmot's output-only config (see annotate).
    """
    scheme_object = get_scheme(scheme)  # ValueError before any work
    with tfmot.quantization.keras.quantize_scope():  # clones need the config classes by name
        return tfmot.quantization.keras.quantize_apply(annotate(model), scheme_object)


def load(path, source, scheme):
    """A QAT model written by fileio.save_model, rebuilt as `apply(source, scheme)` with the
    saved weights: the way to load CQAT/PCQAT models.

    keras.models.load_model cannot load them (tfmot 0.8.1): the quantize config serializes
    without its cluster-preserve weight quantizer, so the loaded layers get tfmot's plain
    quantizer and 4 weights where the file has 7 ("Weight count mismatch for layer ...").
    The cluster-preserve quantizer builds its centroid variables from the kernel it wraps, so
    `source` must be the model the QAT run started from (the stripped clustered model).

    Args:
      path: the HDF5 file (fileio.save_model).
      source: the model that was passed to `apply` (same layers, same distinct values).
      scheme: the scheme that was passed to `apply` (one of SCHEMES).
    Raises:
      ValueError: unknown scheme, or the file does not fit the rebuilt model (Keras's
        weight-count message).
    """
    model = apply(source, scheme)
    model.load_weights(path)
    return model
