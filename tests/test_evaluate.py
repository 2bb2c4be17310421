"""The one streamed evaluation of Keras and TFLite models."""
import numpy as np
import pytest

from tftool import evaluate


def batches(pixels, labels, size):
    for i in range(0, len(labels), size):
        yield pixels[i:i + size], labels[i:i + size]


def fixed(probabilities):
    """A scorer that returns the given rows in order, one batch after another."""
    rows = iter(np.asarray(probabilities, np.float32))
    return lambda pixels: np.stack([next(rows) for _ in range(len(pixels))])


def test_accuracy_agreement_per_class_and_probability_difference():
    labels = np.array([0, 0, 1, 1, 2])
    pixels = np.zeros((5, 2, 2, 1), np.uint8)
    reference = np.eye(3)[[0, 0, 1, 1, 2]]
    other = reference.copy()
    other[1] = [0.2, 0.8, 0.0]   # one class-0 image wrong
    other[4] = [0.1, 0.1, 0.8]   # right, but two probabilities off by 0.1 and one by 0.2
    result = evaluate.evaluate({"ref": fixed(reference), "other": fixed(other)},
                               batches(pixels, labels, 2), ["zero", "one", "two"],
                               reference="ref")
    assert result["ref"]["accuracy"] == 1.0 and result["ref"]["agreement"] == 1.0
    stats = result["other"]
    assert stats["accuracy"] == pytest.approx(0.8) and stats["agreement"] == pytest.approx(0.8)
    assert stats["per_class_accuracy"] == {"zero": 0.5, "one": 1.0, "two": 1.0}
    assert list(stats["per_class_accuracy"]) == ["zero", "one", "two"]  # output-index order
    # |Δp|: image 1 differs by 0.8+0.8, image 4 by 0.1+0.1+0.2, over 5 images × 3 classes
    assert stats["mean_abs_dprob"] == pytest.approx((1.6 + 0.4) / 15)
    assert stats["loss"] == pytest.approx(-(np.log(0.2) + np.log(0.8)) / 5, rel=1e-5)
    assert stats["examples"] == 5


def test_batches_are_scored_one_at_a_time():
    seen = []

    def scorer(pixels):
        seen.append(len(pixels))
        return np.tile([[1.0, 0.0]], (len(pixels), 1))

    labels = np.zeros(10, np.int64)
    evaluate.evaluate({"m": scorer}, batches(np.zeros((10, 1, 1, 1), np.uint8), labels, 4),
                      ["a", "b"])
    assert seen == [4, 4, 2]  # never the whole split at once


def test_keras_logits_and_tflite_probabilities_compare_like_with_like(digits):
    from tftool import data, models
    from tftool.export import convert
    from tftool.litert import Runner

    model = models.build("small_cnn", (8, 8, 1), 10, width=4)
    runner = Runner(model_content=convert.to_tflite(model, "float32"))
    result = evaluate.evaluate({"keras": evaluate.keras_scorer(model),
                                "tflite": evaluate.tflite_scorer(runner)},
                               data.test_batches(digits, (8, 8), 100), digits.class_names,
                               reference="keras")
    assert result["tflite"]["agreement"] == 1.0
    assert result["tflite"]["mean_abs_dprob"] < 1e-5
    assert result["keras"]["examples"] == digits.num_test


def test_unknown_reference_and_empty_split_are_errors():
    with pytest.raises(ValueError, match="reference 'x' is not among m"):
        evaluate.evaluate({"m": fixed([])}, [], ["a"], reference="x")
    with pytest.raises(ValueError, match="empty"):
        evaluate.evaluate({"m": fixed([])}, [], ["a"])
