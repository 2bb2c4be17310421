import numpy as np

from tftool.export import gate, variants


def test_gate_allows_exactly_the_allowed_drop(tmp_path):
    path = str(tmp_path / "m_int8.tflite")
    ref = "the float Keras model"
    assert gate.refusal("int8", 0.98, 0.99, 0.01, path, ref) is None  # 1 point: allowed
    assert gate.refusal("int8", 0.995, 0.99, 0.0, path, ref) is None   # better: allowed
    line = gate.refusal("int8", 0.97, 0.99, 0.01, path, ref)
    assert line.startswith("refused int8: test accuracy 0.9700 is 2.00 points below the float "
                           "Keras model's 0.9900")
    assert line.endswith("not written") and "\n" not in line
    open(path, "wb").close()
    assert "kept the existing" in gate.refusal("int8", 0.5, 0.99, 0.01, path, ref)


def test_gate_reference_is_the_registry_gate_stage(tmp_path):
    import json

    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.9}))
    assert gate.reference(str(tmp_path), "float", 0.99) == ("the float Keras model", 0.99)
    assert gate.reference(str(tmp_path), "student", 0.99) == ("its Keras student model", 0.9)


def test_blank_calibration_images_are_constant():
    batches = list(variants.blank_representative_dataset((8, 8, 1), 3)())
    assert len(batches) == 3 and batches[0][0].shape == (1, 8, 8, 1)
    assert np.all(batches[0][0] == 0)
