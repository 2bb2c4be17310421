"""An RGB data set end to end as an app meets it: train on a folder of colour images, export,
and MediaPipe Tasks ImageClassifier agrees with our runner on every variant, with the class
names from the file's own metadata (the grayscale case is in test_e2e/test_compress_e2e)."""
import os

import numpy as np
import pytest
from PIL import Image

from inprocess import run_main
from mediapipe_client import mediapipe_python  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory, digits):
    """digits as 16×16 RGB PNGs: the digit in a random colour on a random dark background."""
    root = tmp_path_factory.mktemp("rgb_digits")
    rng = np.random.RandomState(0)
    for split, ds in (("train", digits.train.concatenate(digits.validation)),
                      ("test", digits.test)):
        for i, (image, label) in enumerate(ds.as_numpy_iterator()):
            gray = np.kron(image[..., 0], np.ones((2, 2))).astype(np.float32) / 255.0
            ink, paper = rng.uniform(0.5, 1.0, 3), rng.uniform(0.0, 0.3, 3)
            rgb = (gray[..., None] * ink + (1 - gray[..., None]) * paper) * 255
            folder = root / split / f"digit_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb.round().astype(np.uint8), mode="RGB").save(folder / f"{i}.png")
    return str(root)


def test_rgb_folder_exports_agree_in_mediapipe(rgb_folder, tmp_path, mediapipe_python):
    import app_checks
    from tftool import data

    common = [f"--workdir={tmp_path}/w", f"--dataset=folder:{rgb_folder}"]
    # (QAT exports go through the same serving graph; the grayscale tests cover them.)
    for name, args in (("train", ["--epochs=8", "--width=8"]),
                       ("export", [f"--export_dir={tmp_path}/e",
                                   "--variants=float32,int8"])):
        result = run_main(name, *common, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    dataset = data.load(f"folder:{rgb_folder}")
    assert dataset.image_shape == (16, 16, 3)
    paths, pixels, labels = app_checks.write_rgb_pngs(dataset, (16, 16), tmp_path / "png")
    accuracies = app_checks.check_exports(
        mediapipe_python, f"{tmp_path}/e", f"{os.path.basename(rgb_folder)}_small_cnn", paths,
        pixels, labels, dataset.class_names, min_accuracy=0.8)
    assert set(accuracies) == {"float32", "int8"}
