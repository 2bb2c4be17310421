"""tftool.classify / tftool-predict: preprocessing from the file's own metadata, on images of
several sizes and modes, agrees with LiteRT run directly; bad inputs are one line, exit 2."""
import json

import numpy as np
import pytest

from tftool import UserError, classify
from tftool.export import metadata_write
import tiny_classifier
from conftest import error_lines, run_cli

LABELS = [f"digit {i}" for i in range(10)]
NUM_IMAGES = 8


@pytest.fixture(scope="module")
def models(digits, tmp_path_factory):
    """{kind: (path, reference scores of the 8x8 test images, uint8 [N, 8, 8, C] images)}."""
    x_train, _, x_test, _ = tiny_classifier.rgb_digits(digits)
    rgb = tiny_classifier.trained_rgb(digits)
    gray = tiny_classifier.trained_gray_small_cnn(digits)
    folder = tmp_path_factory.mktemp("predict_models")
    out = {}
    for kind, keras_model, mode, channels, output_kind in [
            ("rgb_float32", rgb, "float32", 3, "probabilities"),
            ("rgb_uint8", rgb, "uint8_uint8", 3, "probabilities"),
            ("gray_logits", gray, "float32", 1, "logits")]:
        images = x_test[:NUM_IMAGES, ..., :channels]
        tflite = tiny_classifier.convert(keras_model, mode, x_train[:200, ..., :channels])
        path = folder / f"{kind}.tflite"
        path.write_bytes(metadata_write.populate(tflite, name=kind, description="test",
                                                 version="1", labels=LABELS,
                                                 output_kind=output_kind))
        out[kind] = (str(path), tiny_classifier.litert_scores(tflite, images), images)
    return out


@pytest.fixture(scope="module")
def image_files(digits, tmp_path_factory):
    """{variant: [paths]}: the first test digits as 8x8 L/RGB/RGBA PNG, 8x8 JPEG, and
    upscaled (nearest) to 16x16 L and 24x24 RGBA PNG."""
    from PIL import Image

    _, _, x_test, _ = tiny_classifier.rgb_digits(digits)
    folder = tmp_path_factory.mktemp("predict_images")
    files = {}
    for i, rgb in enumerate(x_test[:NUM_IMAGES]):
        gray = Image.fromarray(rgb[..., 0], mode="L")
        variants = {"gray8.png": gray, "rgb8.png": gray.convert("RGB"),
                    "rgba8.png": gray.convert("RGBA"), "rgb8.jpg": gray.convert("RGB"),
                    "gray16.png": gray.resize((16, 16), Image.NEAREST),
                    "rgba24.png": gray.convert("RGBA").resize((24, 24), Image.NEAREST)}
        for name, image in variants.items():
            path = folder / f"{i}_{name}"
            image.save(path, quality=95) if name.endswith(".jpg") else image.save(path)
            files.setdefault(name, []).append(str(path))
    return files


@pytest.mark.parametrize("kind", ["rgb_float32", "rgb_uint8", "gray_logits"])
def test_classify_agrees_with_interpreter(kind, models, image_files):
    path, reference, _ = models[kind]
    expected = reference.argmax(1)
    if kind == "gray_logits":  # classify turns logits into probabilities
        reference = np.exp(reference - reference.max(1, keepdims=True))
        reference /= reference.sum(1, keepdims=True)
    for variant, paths in image_files.items():
        results = classify.classify(path, paths, top_k=3, num_threads=1)
        top1 = np.array([r["top_k"][0]["index"] for r in results])
        agreement = np.mean(top1 == expected)
        assert agreement >= (1.0 if variant.endswith("8.png") else 0.85), (variant, top1)
        for r, scores in zip(results, reference):
            assert [c["label"] for c in r["top_k"]] == [LABELS[c["index"]] for c in r["top_k"]]
            assert len(r["top_k"]) == 3
            if variant.endswith("8.png"):  # same pixels: same scores
                got = [c["probability"] for c in r["top_k"]]
                np.testing.assert_allclose(got, scores[[c["index"] for c in r["top_k"]]],
                                           atol=1e-5)


def test_classify_refuses_bad_arguments(models, image_files):
    path = models["rgb_float32"][0]
    with pytest.raises(UserError, match="top_k"):
        classify.classify(path, image_files["rgb8.png"], top_k=0)
    with pytest.raises(UserError, match="no images"):
        classify.classify(path, [])


def test_predict_classifies_every_readable_image_and_names_each_bad_one(models, image_files,
                                                                         tmp_path):
    """good.png notes.txt folder/ -> the good image and the folder's images are classified,
    notes.txt and a missing file each get one error line, exit 2; folders are searched
    recursively for image files only."""
    import shutil

    folder = tmp_path / "folder"
    (folder / "nested").mkdir(parents=True)
    for i, path in enumerate(image_files["rgb8.png"][:3]):
        shutil.copy(path, (folder if i else folder / "nested") / f"{i}.png")
    (folder / "README.txt").write_text("not picked: not an image extension")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    good = image_files["rgb8.jpg"][0]
    model = models["rgb_uint8"][0]
    results = classify.classify(model, [good, str(notes), str(folder),
                                        str(tmp_path / "gone.png")])
    assert [r["image"] for r in results] == [
        good, str(notes), str(folder / "1.png"), str(folder / "2.png"),
        str(folder / "nested" / "0.png"), str(tmp_path / "gone.png")]
    assert [("error" in r) for r in results] == [False, True, False, False, False, True]
    proc = run_cli("predict", f"--tflite={model}", good, str(notes), str(folder))
    assert proc.returncode == 2
    out = proc.stdout.splitlines()
    assert len(out) == 4 and out[0].startswith(f"{good}: digit ")
    lines = error_lines(proc.stderr)
    assert lines == [l for l in lines if l.startswith("tftool-predict: error: ")]
    assert len(lines) == 1 and f"{notes}: not an image" in lines[0]
    assert "XNNPACK" not in proc.stderr  # LiteRT's INFO line stays off the terminal
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("predict", f"--tflite={model}", "--json", str(empty), good)
    assert proc.returncode == 2
    assert [("error" in r) for r in json.loads(proc.stdout)] == [True, False]


def test_predict_cli_json(models, image_files):
    proc = run_cli("predict", f"--tflite={models['rgb_uint8'][0]}", "--top_k=2", "--json",
                   *image_files["rgba24.png"][:2])
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["image"] for r in results] == image_files["rgba24.png"][:2]
    assert all(len(r["top_k"]) == 2 for r in results)


def test_predict_cli_bad_inputs_are_one_line(digits, models, image_files, tmp_path):
    good_model, good_image = models["rgb_float32"][0], image_files["rgb8.png"][0]
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    bare = tmp_path / "bare.tflite"
    # The same model converted again, without metadata.
    bare.write_bytes(tiny_classifier.convert(tiny_classifier.trained_rgb(digits), "float32"))
    export_fix = "export it with tftool-export"
    cases = [  # (arguments, the problem named with its file, the fix)
        ([f"--tflite={good_model}", str(not_image)], f"{not_image}: not an image",
         "give a PNG or JPEG"),
        ([f"--tflite={good_model}", str(tmp_path / "missing.jpg")], "missing.jpg: no such file",
         "give paths of PNG or JPEG"),
        ([f"--tflite={tmp_path / 'missing.tflite'}", good_image], "missing.tflite: cannot read",
         "give the path of an exported .tflite"),
        ([f"--tflite={bare}", good_image], f"{bare}: the model has no TFLite metadata",
         export_fix),
        ([f"--tflite={not_image}", good_image], f"{not_image}: not a TFLite model", export_fix),
        ([good_image], "--tflite=PATH.tflite is required", "--tflite"),
    ]
    for args, problem, fix in cases:
        proc = run_cli("predict", *args)
        lines = error_lines(proc.stderr)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and problem in lines[0] and fix in lines[0], (args, lines)
