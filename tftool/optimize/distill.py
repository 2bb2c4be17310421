"""Teacher-student knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the
Knowledge in a Neural Network", https://arxiv.org/abs/1503.02531).

The student learns from the labels and from the teacher's softened class probabilities:

  loss = w · CE(labels, softmax(s)) + (1 − w) · T² · KL(softmax(t/T) ‖ softmax(s/T))

with s and t the student's and teacher's logits, T the temperature and w the
hard-label weight (`hard_label_weight`, the α of Hinton et al. and of the Keras example). Softening by T > 1
exposes how the teacher ranks the wrong classes ("dark knowledge"); the gradients of the soft
term scale as 1/T², so multiplying by T² keeps its weight comparable to the hard-label term when
T changes (Hinton et al. 2015, section 2). Keras's example
https://keras.io/examples/vision/knowledge_distillation/ has the same structure.
"""
import weakref

import tensorflow as tf
import tf_keras as keras


def distillation_loss(labels, student_logits, teacher_logits, temperature, hard_label_weight):
    """Per-example distillation loss (see module docstring).

    Args:
      labels: int [N] class indices.
      student_logits, teacher_logits: float32 [N, K].
      temperature: T > 0; hard_label_weight: weight of the hard-label term, in [0, 1].
    Returns:
      (total, hard, soft): float32 [N] each, in nats; total = hard_label_weight·hard + (1 − hard_label_weight)·T²·soft,
      hard the cross-entropy with the labels, soft the KL divergence at temperature T.
    """
    hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits,
                                                        from_logits=True)
    teacher_probs = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    # KL(p ‖ q) = Σ p (log p − log q), from log-softmax for numerical stability.
    soft = tf.reduce_sum(
        teacher_probs * (tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
                         - tf.nn.log_softmax(student_logits / temperature, axis=-1)), axis=-1)
    total = hard_label_weight * hard + (1.0 - hard_label_weight) * temperature ** 2 * soft
    return total, hard, soft


class Distiller(keras.Model):
    """A student trained to match a frozen teacher; calling it runs the student.

    Both are functional tf_keras models float32 [N, H, W, C] -> [N, K] logits (the student may
    be QAT-wrapped). Only the student's variables train; the teacher runs in inference mode
    (batch-norm moving statistics untouched). Build and compile inside `strategy.scope()`;
    compile with an optimizer only (the loss is built in). Under a distribution strategy the
    per-replica loss is averaged over the global batch (tf.nn.compute_average_loss).

    With mixup_alpha > 0 every training batch is mixed before both models see it (mixup,
    Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): image i becomes
    λ_i·x_i + (1 − λ_i)·x_π(i) with λ_i ~ Beta(α, α) and π a random permutation of the batch;
    the teacher labels the mixed image itself and the hard-label term mixes the two labels'
    cross-entropies with the same λ_i. Teacher and student see the same augmented image: the
    "consistent teaching" of Beyer et al. 2022 ("Knowledge distillation: A good teacher is
    patient and consistent"), whose function matching is mixup, w = 0 and a long schedule.

    Args:
      student, teacher: tf_keras models with the same input shape and number of logits.
      temperature: T > 0 (tftool-distill's default 2).
      hard_label_weight: weight of the hard-label cross-entropy, in [0, 1] (default 0.5).
      mixup_alpha: α of mixup's Beta(α, α), ≥ 0; 0 (default): no mixup.
    Raises:
      ValueError: temperature ≤ 0, hard_label_weight outside [0, 1], mixup_alpha < 0, or
        mismatched input/output shapes.
    """

    def __init__(self, student, teacher, temperature=2.0, hard_label_weight=0.5,
                 mixup_alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}: must be > 0")
        if not 0.0 <= hard_label_weight <= 1.0:
            raise ValueError(f"hard_label_weight={hard_label_weight}: must be in [0, 1]")
        if not mixup_alpha >= 0:
            raise ValueError(f"mixup_alpha={mixup_alpha}: must be ≥ 0")
        self.mixup_alpha = float(mixup_alpha)
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
        self.hard_label_weight = float(hard_label_weight)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.hard_tracker = keras.metrics.Mean(name="student_loss")
        self.soft_tracker = keras.metrics.Mean(name="distillation_loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        # Built now, not at the first batch: Keras's BackupAndRestore builds the optimizer of a
        # built model before restoring it after a kill (tf_keras warns and defers otherwise).
        self.build((None, *student.input_shape[1:]))

    @property
    def metrics(self):
        # Listed here so fit() resets them each epoch.
        return [self.loss_tracker, self.hard_tracker, self.soft_tracker, self.accuracy]

    def call(self, images, training=False):
        return self.student(images, training=training)

    def _distill_losses(self, images, labels, training, mixed=None):
        teacher_logits = self.teacher(images, training=False)
        student_logits = self(images, training=training)
        total, hard, soft = distillation_loss(labels, student_logits, teacher_logits,
                                              self.temperature, self.hard_label_weight)
        if mixed is not None:  # mixup: the hard term of the second label, weighted 1 − λ
            lam, other_labels = mixed
            other = keras.losses.sparse_categorical_crossentropy(other_labels, student_logits,
                                                                 from_logits=True)
            hard = lam * hard + (1.0 - lam) * other
            total = (self.hard_label_weight * hard
                     + (1.0 - self.hard_label_weight) * self.temperature ** 2 * soft)
        return student_logits, total, hard, soft

    def _mixup(self, images, labels):
        """(mixed images, (λ [N], the partner labels [N])) of one batch (class docstring)."""
        batch = tf.shape(images)[0]
        a = tf.random.gamma([batch], self.mixup_alpha)
        b = tf.random.gamma([batch], self.mixup_alpha)
        lam = a / (a + b)  # Beta(α, α) from two Gammas
        order = tf.random.shuffle(tf.range(batch))
        lam_images = tf.reshape(tf.cast(lam, images.dtype), [-1, 1, 1, 1])
        mixed = lam_images * images + (1.0 - lam_images) * tf.gather(images, order)
        return mixed, (lam, tf.gather(labels, order))

    def _update_metrics(self, labels, logits, total, hard, soft):
        self.loss_tracker.update_state(total)
        self.hard_tracker.update_state(hard)
        self.soft_tracker.update_state(soft)
        self.accuracy.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, labels = data
        mixed = None
        if self.mixup_alpha > 0:
            images, mixed = self._mixup(images, labels)
        with tf.GradientTape() as tape:
            logits, total, hard, soft = self._distill_losses(images, labels, training=True,
                                                             mixed=mixed)
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
                "temperature": self.temperature, "hard_label_weight": self.hard_label_weight,
                "mixup_alpha": self.mixup_alpha, "name": self.name}

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


# ---- the pieces tftool-distill assembles -----------------------------------------------------
def teacher_path(teacher, workdir):
    """The teacher's model.h5 for --teacher, or None when it names a model to train first.

    Args:
      teacher: a stage of WORKDIR (not a student), a stage folder or .h5 path, or a model name.
    Raises:
      UserError: the stage or path has no model, or `teacher` is none of the three.
    """
    import os

    from tftool import UserError, models, stages

    if teacher in stages.STAGES:
        if teacher.startswith("student"):
            raise UserError(f"--teacher={teacher}: a student cannot teach itself; use float")
        if not stages.has_model(workdir, teacher):
            raise UserError(f"--teacher={teacher}: "
                            + stages.missing_model_message(workdir, teacher)
                            + f", or pass a model name ({', '.join(models.MODELS)}) to train "
                              f"a teacher")
        return stages.model_path(workdir, teacher)
    if teacher in models.MODELS:
        return None
    if os.sep in teacher or teacher.endswith(".h5") or os.path.exists(teacher):
        path = teacher if teacher.endswith(".h5") else os.path.join(teacher, stages.MODEL_FILE)
        if not os.path.isfile(path):
            raise UserError(f"--teacher={teacher}: no model at {path}; give a stage folder with "
                            f"{stages.MODEL_FILE} (e.g. otherworkdir/float) or a .h5 file")
        return path
    raise UserError(f"--teacher={teacher}: not a stage ({', '.join(stages.NAMES)}), a path "
                    f"or a model ({', '.join(models.MODELS)})")


def teacher_epochs(path):
    """The epochs the teacher at `path` was trained from scratch, or None (a named teacher not
    trained yet, or a file without that record).

    A stage folder's metrics.json "epochs" is its own run; a fine-tuning stage of a workdir
    (qat, pruned, pqat, clustered, ...) counts the epochs of the model it started from, down
    to the stage trained from scratch (float), so `--teacher=pqat` does not give the student
    the 3 epochs of QAT fine-tuning.
    """
    import json
    import os

    from tftool import stages

    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(folder)
    while name in stages.STAGES and stages.get(name).input is not None:
        name = stages.get(name).input
        folder = os.path.join(os.path.dirname(folder), name)
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            epochs = json.load(f).get("epochs")
    except (OSError, ValueError):
        return None
    return int(epochs) if isinstance(epochs, int) and epochs >= 1 else None


def named(model_name, input_shape, num_classes, name, **kwargs):
    """models.build(model_name, ...) renamed to `name` (unique inside a Distiller, whose
    weight files group variables by sub-model name)."""
    from tftool import internals, models

    return internals.rename_model(models.build(model_name, input_shape, num_classes, **kwargs),
                                  name)


# --temperature=auto / --hard_label_weight=auto try these (tftool-distill: short runs on the
# validation split, then a full run of the best).
TEMPERATURE_GRID = (1.0, 2.0, 4.0)
WEIGHT_GRID = (0.1, 0.5, 0.9)


# tftool-distill's defaults, measured on the development photos (12,000 CIFAR-10 JPEGs: 9,000
# train / 1,000 validation / 2,000 test; benchmarks/compress_defaults.py --study=distill, seed
# 0): a width-12 student (41,662 parameters), distilled vs the same student on the labels
# alone, change in test points [95% paired interval]:
#   teacher = float model (width 32) trained 15 epochs (0.690):
#     student 15 epochs:  T=2 w=0.5 +1.35 [-0.46, +3.16], T=4 w=0.5 +1.20 [-0.67, +3.07]
#     student 30 epochs:  T=2 w=0.5 +1.55 [-0.26, +3.36], T=4 w=0.5 +1.45, T=4 w=0.1 -1.65,
#                         T=1 w=0 mixup 0.4 (function matching, Beyer et al.) -4.70
#     student 60 epochs:  T=2 w=0.5 -0.90, T=4 w=0.5 -1.80, T=2 w=0.5 mixup 0.2 -1.65: a
#                         student trained longer than its teacher gains nothing from it
#   teacher = float model trained 60 epochs (0.726), student 60 epochs: T=2 w=0.5 +0.75
#   teacher = small_cnn width 64 (1.15 M parameters, 28x) trained 60 epochs (0.740), student
#     60 epochs: T=2 w=0.5 +1.05 [-0.79, +2.89]
#   rerun, teacher 15 epochs (0.689), student 15 epochs: T=2 w=0.5 +0.00 [-1.76, +1.76]
#     (0.618 both); both with --noaugment: T=2 w=0.5 0.672 vs 0.659, +1.30 [-0.36, +2.96]
#   student and baseline without augmentation (tftool-distill's default since; another
#   machine, an Intel Xeon with AMX; teacher = float model 15 epochs, 0.701 / 0.681 / 0.691):
#     student 15 epochs, T=2 w=0.5: seed 0 +1.80 [+0.07, +3.53] (0.677 vs 0.659), seed 1
#       +1.15 [-0.63, +2.93] (0.650), seed 2 +1.05 [-0.72, +2.82] (0.660): mean +1.33
#     seed 0: T=4 w=0.5 +0.35, T=2 w=0.1 -0.80, T=2 w=0.5 30 epochs +1.80 [-0.14, +3.74]
#     seed 0 with --augment (the old default): student 0.612, baseline 0.6145, -0.25
#     seed 0, teacher = float model trained 15 epochs with --noaugment (0.7185, 1.75 points
#       better, but train accuracy 0.98: its soft labels on the training images are nearly the
#       labels): +0.55 [-1.17, +2.27]. A teacher that has memorized the student's training
#       images has little to teach on them; the augmented teacher's are softer.
#     seed 0 with --hflip (flips only, both): student 0.677, baseline 0.679 (+2.0 from the
#       flips), -0.20 [-1.83, +1.43]: flips regularize the student as much as the teacher does
# So: T=2, w=0.5 (Hinton's hard-label weight), by default the student trains as many epochs
# as its teacher did, on clean images. Every gain is 1-2 points and within the noise of 2,000
# test images on most seeds (a gain must reach about 1.8 points for its interval to clear zero);
# the old defaults (T=4, w=0.1) lost 1.65 points here (30 epochs) and 2.72 on the 20,000-photo
# development set (15 epochs). On digits every difference is a few of 359 test images
# (README's seed table).
def student(input_shape, num_classes, student_model="small_cnn", student_width=12,
            student_alpha=0.35, qat=False):
    """The student: `student_model` at its width, named "student", QAT-wrapped if `qat`.

    Call inside strategy.scope(). Built first in a Distiller's build, so it draws the same
    initial weights as the baseline student with the same seed.
    """
    from tftool.optimize import qat as qat_lib

    model = named(student_model, input_shape, num_classes, "student", width=student_width,
                  alpha=student_alpha)
    return qat_lib.apply(model) if qat else model


def load_teacher(path, teacher, input_shape, num_classes):
    """Loads the teacher at `path` and checks it fits the student's data.

    Raises:
      UserError: not a readable Keras model, or another input shape or class count (names
        both and the fix).
    """
    from tftool import UserError, fileio

    model = fileio.load_model(path, fix=f"give --teacher a model trained by tftool (now "
                                        f"--teacher={teacher})")
    if (tuple(model.input_shape[1:]) != tuple(input_shape)
            or model.output_shape[-1] != num_classes):
        raise UserError(f"--teacher={teacher}: cannot teach this student (teacher takes "
                        f"{tuple(model.input_shape[1:])} and has {model.output_shape[-1]} "
                        f"outputs; the data gives {tuple(input_shape)} and {num_classes} "
                        f"classes); give a model trained on this data set at this input size")
    return model


_TEACHER_ACCURACY = weakref.WeakKeyDictionary()  # teacher -> {split: accuracy}


def student_metrics(model, teacher, context, teacher_name, teacher_path, temperature,
                    hard_label_weight, mixup_alpha=0.0, **student_settings):
    """metrics.json figures of a distilled student: its settings, the teacher's accuracy on
    the context's first split (scored once per teacher and split in a process, so the runs
    of a --temperature=auto grid do not score it again) and the teacher-to-student parameter
    ratio (warned about below 4×)."""
    from absl import logging

    from tftool import evaluate

    from tftool import graphless

    # an imported subclassed teacher keeps its weights inside a SavedModel (graphless.py)
    params, teacher_params = int(model.count_params()), graphless.count_params(teacher)
    ratio = teacher_params / params
    if ratio < 4:
        logging.warning("teacher has only %.1f× the student's parameters", ratio)
    split = context.splits[0]
    scores = _TEACHER_ACCURACY.setdefault(teacher, {})
    if split not in scores:
        scores[split] = evaluate.keras_metrics(
            teacher, context.dataset, context.image_size, splits=(split,))[f"{split}_accuracy"]
    return {"teacher": teacher_name, "teacher_path": teacher_path,
            f"teacher_{split}_accuracy": scores[split],
            "teacher_params": teacher_params, "teacher_to_student_params": ratio,
            "temperature": temperature, "hard_label_weight": hard_label_weight,
            "mixup_alpha": mixup_alpha, **student_settings}
