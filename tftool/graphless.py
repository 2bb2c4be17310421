"""A subclassed model (no layer graph to rebuild) kept whole: a TF SavedModel of its inference
function behind one tf_keras layer, so it can be the float model of a workdir.

What it gets: everything that only runs the model — its accuracy, every post-training
variant (float16, dynamic_range, int8, int16x8: the TFLite converter traces through the
restored function), selective int8 where layers are visible, the gate, the benchmark, micro,
and distillation with it as the teacher. What it cannot get: QAT, pruning and clustering,
which wrap layers tfmot can see (tfmot refuses subclassed models: model-optimization #957,
#638); under make those stages are skipped with one line (cli/shared.run_or_skip).

The SavedModel (WORKDIR/float/saved_model/) is written with tf.saved_model.save from a
tf.Module holding the model and a `serve` tf.function (the TensorFlow SavedModel guide,
tensorflow.org/guide/saved_model), which works for Keras 3 and tf_keras models alike.
"""
import contextlib
import os
import shutil
import tempfile

import tensorflow as tf
import tf_keras as keras

FOLDER = "saved_model"
LAYER = "saved_model"


@keras.saving.register_keras_serializable(package="tftool")
class SavedModelLayer(keras.layers.Layer):
    """The `serve` function of a SavedModel as a layer: float32 [N, H, W, C] -> [N, K].

    Args:
      path: the SavedModel folder (absolute: model.h5 records it).
      outputs: "logits" (returned as they are) or "probabilities" (returned as log(p), logits
        whose softmax gives p back; p is clipped at 1e-12 first).
    Raises (on first use): UserError: the folder is missing (the workdir was moved without
      it, or it was deleted): run tftool-import again.
    """

    def __init__(self, path, outputs="logits", **kwargs):
        super().__init__(**kwargs)
        self.path, self.outputs_kind = path, outputs
        self._loaded = None
        self.emit_probabilities = False  # probabilities_out: p itself, no log

    def build(self, input_shape):
        from tftool import UserError

        if not os.path.isdir(self.path):
            raise UserError(f"the imported model's SavedModel {self.path} is missing; run "
                            f"tftool-import --overwrite again")
        self._loaded = tf.saved_model.load(self.path)
        super().build(input_shape)

    def call(self, inputs):
        out = self._loaded.serve(tf.cast(inputs, tf.float32))
        if self.outputs_kind == "probabilities" and not self.emit_probabilities:
            out = tf.math.log(tf.maximum(out, 1e-12))
        return out

    def get_config(self):
        return {**super().get_config(), "path": self.path, "outputs": self.outputs_kind}


@contextlib.contextmanager
def probabilities_out(model):
    """While tracing a serving function: a model whose SavedModelLayer holds probabilities
    returns them as they are (no log), and the block gets True, so the caller adds no softmax:
    softmax(log p) is p, and the TFLite int8 quantizer fails on that LOG (measured, TF 2.21:
    "scale out of expressed type range", or a crash in mlir_quantize). Otherwise a no-op
    yielding False."""
    layers = [layer for layer in getattr(model, "layers", [])
              if isinstance(layer, SavedModelLayer) and layer.outputs_kind == "probabilities"]
    for layer in layers:
        layer.emit_probabilities = True
    try:
        yield bool(layers)
    finally:
        for layer in layers:
            layer.emit_probabilities = False


def count_params(model):
    """model.count_params() plus the variables inside its SavedModelLayers, which Keras does
    not see as weights (an imported subclassed model would count 0 parameters)."""
    total = int(model.count_params())
    for layer in getattr(model, "layers", []):
        if isinstance(layer, SavedModelLayer):
            if layer._loaded is None:  # noqa: SLF001  (built on first call)
                layer.build(model.input_shape)
            variables = getattr(layer._loaded, "all_variables", [])  # noqa: SLF001
            total += sum(int(tf.size(v)) for v in variables)
    return total


def save(source, folder, input_shape):
    """Writes `source`'s inference function (training=False) as a SavedModel to `folder`
    (written beside it, then renamed into place; an older folder is removed just before, so
    a failed save leaves the old one). Returns `folder`.

    Args:
      source: a built Keras 3 or tf_keras model taking float32 [N, *input_shape].
    """
    module = tf.Module()
    module.model = source
    module.all_variables = list(source.variables)  # count_params reads them back
    module.serve = tf.function(lambda x: source(x, training=False),
                               input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".saved_model.", dir=parent)
    try:
        tf.saved_model.save(module, tmp)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def wrap(folder, input_shape, outputs="logits", name="imported"):
    """A one-layer tf_keras functional model around the SavedModel in `folder`:
    float32 [N, *input_shape] -> [N, K] (logits, or log-probabilities: SavedModelLayer)."""
    inputs = keras.Input(input_shape, name="image")
    scores = SavedModelLayer(os.path.abspath(folder), outputs=outputs, name=LAYER)(inputs)
    return keras.Model(inputs, scores, name=name)
