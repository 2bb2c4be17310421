import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import models
from tftool.train import fit as trainer
from tftool.optimize import distill, qat


def pair(width_teacher=16, width_student=4):
    teacher = models.build("small_cnn", (8, 8, 1), 10, width=width_teacher)
    teacher._name = "teacher"
    student = models.build("small_cnn", (8, 8, 1), 10, width=width_student)
    student._name = "student"
    return student, teacher


def test_loss_terms_follow_hinton_et_al():
    rng = np.random.RandomState(0)
    s, t = rng.randn(5, 10).astype(np.float32), rng.randn(5, 10).astype(np.float32) * 3
    labels = np.arange(5)
    T = 4.0
    total, hard, soft = distill.distillation_loss(labels, s, t, T, 0.1)
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(
        z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    p, q = softmax(t / T), softmax(s / T)
    np.testing.assert_allclose(soft, (p * np.log(p / q)).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(hard, -np.log(softmax(s)[np.arange(5), labels]), rtol=1e-5)
    np.testing.assert_allclose(total, 0.1 * hard + 0.9 * T ** 2 * soft, rtol=1e-5)
    _, _, same = distill.distillation_loss(labels, t, t, T, 0.1)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)  # KL of a distribution with itself


def test_only_the_student_trains_under_two_replicas(digits, tmp_path):
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    holder = {}

    def model_fn():
        student, teacher = pair()
        holder["teacher_before"] = [w.copy() for w in teacher.get_weights()]
        holder["student_before"] = [w.copy() for w in student.get_weights()]
        return distill.Distiller(student, teacher, temperature=4.0, hard_label_weight=0.1)

    config = trainer.TrainConfig(epochs=2, learning_rate=1e-3, lr_schedule="cosine",
                                 per_replica_batch_size=32, augment=False)
    distiller, history = trainer.train(
        strategy, model_fn, digits, (8, 8), config, str(tmp_path),
        compile_fn=lambda m, opt: m.compile(optimizer=opt))
    for before, after in zip(holder["teacher_before"], distiller.teacher.get_weights()):
        np.testing.assert_array_equal(before, after)  # BN statistics included
    changed = [not np.array_equal(b, a) for b, a in
               zip(holder["student_before"], distiller.student.get_weights())]
    assert all(changed)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history)
    assert history["loss"][-1] < history["loss"][0]
    assert not distiller.teacher.trainable_weights


def without_build_config(value):
    if isinstance(value, dict):
        return {k: without_build_config(v) for k, v in value.items() if k != "build_config"}
    if isinstance(value, list):
        return [without_build_config(v) for v in value]
    return value


@pytest.mark.parametrize("student_qat", [False, True])
def test_config_round_trip(student_qat):
    student, teacher = pair()
    if student_qat:
        student = qat.apply(student)
    d = distill.Distiller(student, teacher, temperature=2.5, hard_label_weight=0.3)
    config = d.get_config()
    clone = distill.Distiller.from_config(config)
    assert clone.temperature == 2.5 and clone.hard_label_weight == 0.3
    # Equal up to build_config (input shapes recorded once a layer is built).
    assert without_build_config(clone.get_config()) == without_build_config(config)
    trainable = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    assert trainable(clone.student) == trainable(d.student)
    assert clone.teacher.count_params() == teacher.count_params()
    assert [l.__class__.__name__ for l in clone.student.layers] == [
        l.__class__.__name__ for l in d.student.layers]


@pytest.mark.parametrize("kwargs,message", [
    (dict(temperature=0.0), "temperature=0.0: must be > 0"),
    (dict(hard_label_weight=1.5), "hard_label_weight=1.5: must be in"),
])
def test_bad_hyperparameters(kwargs, message):
    student, teacher = pair()
    with pytest.raises(ValueError, match=message):
        distill.Distiller(student, teacher, **kwargs)


def test_call_runs_the_student():
    student, teacher = pair()
    d = distill.Distiller(student, teacher)
    x = np.random.RandomState(0).rand(3, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(d(x), student(x, training=False), atol=1e-6)


def test_the_students_default_epochs_are_its_teachers(tmp_path):
    import json

    (tmp_path / "float").mkdir()
    path = str(tmp_path / "float" / "model.h5")
    assert distill.teacher_epochs(path) is None  # no record beside the model
    (tmp_path / "float" / "metrics.json").write_text(json.dumps({"epochs": 12}))
    assert distill.teacher_epochs(path) == 12
    assert distill.teacher_epochs(None) is None  # a teacher tftool-distill trains itself
    (tmp_path / "pqat").mkdir()  # a fine-tuned stage counts the epochs of float, where it began
    (tmp_path / "pqat" / "metrics.json").write_text(json.dumps({"epochs": 3}))
    assert distill.teacher_epochs(str(tmp_path / "pqat" / "model.h5")) == 12
