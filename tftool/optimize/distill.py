"""Teacher-student knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the
Knowledge in a Neural Network", https://arxiv.org/abs/1503.02531).

The student learns from the labels and from the teacher's softened class probabilities:

  loss = alpha · CE(labels, softmax(s)) + (1 − alpha) · T² · KL(softmax(t/T) ‖ softmax(s/T))

with s and t the student's and teacher's logits and T the temperature. Softening by T > 1
exposes how the teacher ranks the wrong classes ("dark knowledge"); the gradients of the soft
term scale as 1/T², so multiplying by T² keeps its weight comparable to the hard-label term when
T changes (Hinton et al. 2015, section 2). Keras's example
https://keras.io/examples/vision/knowledge_distillation/ has the same structure.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)

import tensorflow as tf
import tf_keras as keras


def distillation_loss(labels, student_logits, teacher_logits, temperature, alpha):
    """Per-example distillation loss (see module docstring).

    Args:
      labels: int [N] class indices.
      student_logits, teacher_logits: float32 [N, K].
      temperature: T > 0; alpha: weight of the hard-label term, in [0, 1].
    Returns:
      (total, hard, soft): float32 [N] each, in nats; total = alpha·hard + (1 − alpha)·T²·soft,
      hard the cross-entropy with the labels, soft the KL divergence at temperature T.
    """
    hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits,
                                                        from_logits=True)
    teacher_probs = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    # KL(p ‖ q) = Σ p (log p − log q), from log-softmax for numerical stability.
    soft = tf.reduce_sum(
        teacher_probs * (tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
                         - tf.nn.log_softmax(student_logits / temperature, axis=-1)), axis=-1)
    total = alpha * hard + (1.0 - alpha) * temperature ** 2 * soft
    return total, hard, soft


class Distiller(keras.Model):
    """A student trained to match a frozen teacher; calling it runs the student.

    Both are functional tf_keras models float32 [N, H, W, C] -> [N, K] logits (the student may
    be QAT-wrapped). Only the student's variables train; the teacher runs in inference mode
    (batch-norm moving statistics untouched). Build and compile inside `strategy.scope()`;
    compile with an optimizer only (the loss is built in). Under a distribution strategy the
    per-replica loss is averaged over the global batch (tf.nn.compute_average_loss).

    Args:
      student, teacher: tf_keras models with the same input shape and number of logits.
      temperature: T > 0 (default 4).
      alpha: weight of the hard-label cross-entropy, in [0, 1] (default 0.1).
    Raises:
      ValueError: temperature ≤ 0, alpha outside [0, 1], or mismatched input/output shapes.
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}: must be > 0")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha}: must be in [0, 1]")
        if tuple(student.input_shape[1:]) != tuple(teacher.input_shape[1:]):
            raise ValueError(f"student input {student.input_shape[1:]} differs from teacher "
                             f"input {teacher.input_shape[1:]}")
        if student.output_shape[-1] != teacher.output_shape[-1]:
            raise ValueError(f"student has {student.output_shape[-1]} logits, teacher "
                             f"{teacher.output_shape[-1]}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.hard_tracker = keras.metrics.Mean(name="student_loss")
        self.soft_tracker = keras.metrics.Mean(name="distillation_loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        # Listed here so fit() resets them each epoch.
        return [self.loss_tracker, self.hard_tracker, self.soft_tracker, self.accuracy]

    def call(self, images, training=False):
        return self.student(images, training=training)

    def _distill_losses(self, images, labels, training):
        teacher_logits = self.teacher(images, training=False)
        student_logits = self(images, training=training)
        total, hard, soft = distillation_loss(labels, student_logits, teacher_logits,
                                              self.temperature, self.alpha)
        return student_logits, total, hard, soft

    def _update_metrics(self, labels, logits, total, hard, soft):
        self.loss_tracker.update_state(total)
        self.hard_tracker.update_state(hard)
        self.soft_tracker.update_state(soft)
        self.accuracy.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, labels = data
        with tf.GradientTape() as tape:
            logits, total, hard, soft = self._distill_losses(images, labels, training=True)
            # Mean over the global batch: gradients summed across replicas then match the
            # single-device mean.
            loss = tf.nn.compute_average_loss(total)
            if self.student.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._update_metrics(labels, logits, total, hard, soft)

    def test_step(self, data):
        images, labels = data
        logits, total, hard, soft = self._distill_losses(images, labels, training=False)
        return self._update_metrics(labels, logits, total, hard, soft)

    def get_config(self):
        return {"student": keras.saving.serialize_keras_object(self.student),
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "temperature": self.temperature, "alpha": self.alpha, "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds the distiller (architectures and hyperparameters; not the weights)."""
        import tensorflow_model_optimization as tfmot

        config = dict(config)
        with tfmot.quantization.keras.quantize_scope():  # QAT students
            student = keras.saving.deserialize_keras_object(config.pop("student"),
                                                            custom_objects=custom_objects)
            teacher = keras.saving.deserialize_keras_object(config.pop("teacher"),
                                                            custom_objects=custom_objects)
        return cls(student, teacher, **config)
