import numpy as np

from tftool import stats
from tftool.export import driver, gate


def test_gate_refusal_line_names_the_interval_and_the_rule(tmp_path):
    path = str(tmp_path / "m_int8.tflite")
    ref = "the float Keras model"
    noise = stats.paired_from_counts(351, 4, 0, 4)  # 1.11 points on 359 images: noise
    assert gate.refusal("int8", noise, 0.01, path, ref) is None
    line = gate.refusal("int8", noise, 0.01, path, ref, rule="point")
    assert line.startswith("refused int8: test accuracy 0.9777 is 1.11 points below the float "
                           "Keras model's 0.9889 (95% interval of the drop [-0.11, 2.81] "
                           "points; 4 of 359 images only the reference gets right, 0 only "
                           "int8; --gate=point --max_accuracy_drop=0.01)")
    assert line.endswith("not written") and "\n" not in line
    real = stats.paired_from_counts(9700, 111, 0, 189)  # the same drop on 10,000 images
    assert gate.refusal("int8", real, 0.01, path, ref) is not None
    open(path, "wb").close()
    broken = stats.paired_from_counts(30, 325, 1, 3)
    assert "kept the existing" in gate.refusal("int8", broken, 0.01, path, ref)


def test_gate_reference_is_the_registry_gate_stage():
    assert gate.reference_stage("pqat") == "float" and gate.reference_stage("qat") == "float"
    assert gate.reference_stage("student") == "student"
    assert gate.reference_name("float") == "the float Keras model"
    assert gate.reference_name("student") == "its Keras student model"


def test_blank_calibration_images_are_constant():
    batches = list(driver.blank_representative_dataset((8, 8, 1), 3)())
    assert len(batches) == 3 and batches[0][0].shape == (1, 8, 8, 1)
    assert np.all(batches[0][0] == 0)
