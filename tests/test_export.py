import numpy as np

from tftool.cli import export


def test_gate_allows_exactly_the_allowed_drop(tmp_path):
    path = str(tmp_path / "m_int8.tflite")
    assert export.gate_refusal("int8", 0.98, 0.99, 0.01, path) is None  # 1 point: allowed
    assert export.gate_refusal("int8", 0.995, 0.99, 0.0, path) is None   # better: allowed
    line = export.gate_refusal("int8", 0.97, 0.99, 0.01, path)
    assert line.startswith("refused int8: test accuracy 0.9700 is 2.00 points below the float "
                           "Keras model's 0.9900")
    assert line.endswith("not written") and "\n" not in line
    open(path, "wb").close()
    assert "kept the existing" in export.gate_refusal("int8", 0.5, 0.99, 0.01, path)


def test_blank_calibration_images_are_constant():
    batches = list(export.blank_representative_dataset((8, 8, 1), 3)())
    assert len(batches) == 3 and batches[0][0].shape == (1, 8, 8, 1)
    assert np.all(batches[0][0] == 0)
