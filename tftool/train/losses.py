"""The training loss and compile of every stage: sparse cross-entropy on logits, with label
smoothing when asked, and the accuracy metric.

SparseCrossentropyWithSmoothing is registered as "tftool>SparseCrossentropyWithSmoothing"
(keras.saving.register_keras_serializable) when this module is imported, which importing
train/fit.py does.
"""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="tftool")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy of logits against integer labels with label smoothing (Szegedy et al.
    2016, "Rethinking the Inception Architecture", §7): keras.losses.CategoricalCrossentropy
    (from_logits=True, label_smoothing) on one-hot labels; the sparse loss of tf_keras has no
    label_smoothing.

    y_true: int [N] (or [N, 1]) class indices; y_pred: float [N, K] logits. Returns the per-
    example loss [N] (Keras reduces it).
    """

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy_smoothed", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = tf.shape(y_pred)[-1]
        labels = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [-1]), classes,
                            dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def loss_for(label_smoothing=0.0):
    """The training loss on logits: sparse cross-entropy, with label smoothing when > 0."""
    if label_smoothing:
        return SparseCrossentropyWithSmoothing(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def default_compile(model, optimizer, label_smoothing=0.0):
    model.compile(optimizer=optimizer, loss=loss_for(label_smoothing),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
