"""Every private TF / tf_keras / tfmot / LiteRT API tftool touches, in this one module.

Each function says why no public API serves. If a pinned version moves, this is the only file
to mend; each one runs against the installed versions in the tests of the code that calls
it (e.g. tests/test_convert.py, test_qat.py, test_cluster.py, test_runner.py).
"""
import contextlib


def ops_details(interpreter):
    """The op graph of a LiteRT Interpreter: [{"op_name", "inputs", "outputs", ...}].

    Private `Interpreter._get_ops_details()`: the public API lists tensors and signatures but
    not which op reads which tensor, and the benchmark must find each op's kernel tensor to
    measure the sparsity that ships in the flatbuffer.
    """
    return interpreter._get_ops_details()  # noqa: SLF001


def is_graph_network(model):
    """Whether a tf_keras Model is functional (a graph of layers), not subclassed.

    Private `Model._is_graph_network`: tf_keras has no public test, and tfmot itself uses this
    attribute to decide what it can wrap, so the pre-flight check must ask the same question.
    """
    return bool(getattr(model, "_is_graph_network", False))


def rename_model(model, name):
    """Sets a built tf_keras model's name.

    Private `Model._name`: `name` is read-only after construction, and a Distiller's weight
    files group variables by sub-model name, so a student built by a shared builder must get
    a unique name without being rebuilt.
    """
    model._name = name  # noqa: SLF001
    return model


def in_multi_worker_mode(strategy):
    """Whether a tf.distribute strategy spans several workers.

    Private `StrategyExtended._in_multi_worker_mode()`: the public API has no such test, and
    it is what Keras itself consults to decide which worker writes checkpoints.
    """
    return bool(strategy.extended._in_multi_worker_mode())  # noqa: SLF001


def tfmot_quantize_configs():
    """tfmot's default 8-bit QuantizeConfig module (NoOpQuantizeConfig,
    Default8BitOutputQuantizeConfig).

    Not exported by tfmot's public API, which offers no config for a layer that needs only
    its output quantized (Rescaling) nor one that records an unsupported layer and goes on.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs)
    return default_8bit_quantize_configs


def tfmot_prune_registry():
    """(prunable_layer, prune_registry) modules of tfmot: the tests PruneLowMagnitude applies
    to a layer. Not public; the pre-flight check must give the same verdict tfmot will."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prunable_layer, prune_registry)
    return prunable_layer, prune_registry


def input_in_model(model, layer):
    """The input tensor of `layer` at the one node of it that belongs to functional `model`'s
    graph, or None when it has not exactly one there.

    Private `Layer._inbound_nodes` and `Functional._network_nodes` (keys "<name>_ib-<i>"):
    tfmot's strip_pruning clones a model but reuses its unwrapped layers, so a BatchNormalization
    of a pruned model has two inbound nodes (the wrapped model's and the stripped one's); the
    public `layer.input` then raises, and no public API says which node is the model's own.
    """
    keys = getattr(model, "_network_nodes", set())
    mine = [node for i, node in enumerate(layer._inbound_nodes)  # noqa: SLF001
            if f"{layer.name}_ib-{i}" in keys]
    return mine[0].input_tensors if len(mine) == 1 else None


def tfmot_cluster_wrapper():
    """tfmot's ClusterWeights wrapper class.

    tfmot's public cluster_weights() decides per Conv2D whether it has "enough weights" with
    layer.trainable_weights[-1] as the bias; for a Conv2D without bias (Conv-BN, every tftool
    model) that is the kernel, so per-channel clustering is silently skipped (tfmot 0.8.1,
    cluster.layer_has_enough_weights_to_cluster). The wrapper class is reachable only through
    this internal module; optimize/cluster.py does the check correctly instead.
    """
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper
    return cluster_wrapper.ClusterWeights


def disable_per_channel_weights(converter):
    """Makes a TFLiteConverter quantize each weight tensor with one scale (per tensor) instead
    of one per output channel, through its private `_experimental_disable_per_channel`
    attribute (TF 2.21; no public option). export/convert.py's "int8_per_tensor" mode uses it
    so a clustered kernel's centroids map to one int8 code each (optimize/fold.py says why)."""
    converter._experimental_disable_per_channel = True  # noqa: SLF001


@contextlib.contextmanager
def tfmot_per_tensor_centroids():
    """While active, tfmot's cluster-preserve quantizers build one centroid set per kernel.

    tfmot 0.8.1's `get_centroids` (cluster_preserve_quantize_registry) switches a Conv2D to
    per-channel centroids whenever every output channel holds about the same number of
    distinct values, which a per-kernel clustered kernel usually does; CQAT then trains each
    channel's copy of the centroids apart (measured: a kernel of 8 clusters left QAT with 58
    distinct values, 8 per channel). The module-level function is replaced by its own
    per-kernel branch for the duration of a quantizer's build (main thread, no concurrency).
    """
    module = tfmot_cluster_preserve_registry()
    original = module.get_centroids

    def per_tensor(layer, weight, data_format):
        import tensorflow as tf

        centroids, index = module.get_unique(weight)
        return centroids, tf.size(centroids), index, False

    module.get_centroids = per_tensor
    try:
        yield
    finally:
        module.get_centroids = original


def tfmot_cluster_preserve_registry():
    """tfmot's cluster-preserve quantize registry module (registry and weight-quantizer
    classes): the public tfmot.experimental.combine has only the scheme, and tftool needs one
    quantizer per layer (optimize/qat.py `_cluster_preserve_scheme` says why)."""
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
        cluster_preserve_quantize_registry)
    return cluster_preserve_quantize_registry


# ---- Optuna (tftool-search) -----------------------------------------------------------------
def optuna_trial_id(trial):
    """The storage id of an Optuna Trial or FrozenTrial (private `_trial_id`: the storage's
    set_trial_state_values and the heartbeat take it; only the study-local number is public)."""
    return trial._trial_id  # noqa: SLF001


def optuna_heartbeat(trial):
    """A context manager recording Optuna's heartbeat for an asked trial while it runs (RDB
    storages created with heartbeat_interval; a no-op for others).

    Private `optuna.storages._heartbeat.get_heartbeat_thread`: Study.optimize starts it for the
    trials it runs, but tftool-search asks for its trials itself (ask-and-tell, so that
    "count the trials, then ask for one" is atomic between processes) and Optuna has no public
    way to start the heartbeat of an asked trial.
    """
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(optuna_trial_id(trial), trial.study._storage)  # noqa: SLF001
