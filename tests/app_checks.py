"""What a real app sees: MediaPipe Tasks ImageClassifier (in its own venv) and LiteRT's
signature runner, fed the test images as an app feeds them, against tftool's own runner."""
import glob
import os

import numpy as np
from PIL import Image

import mediapipe_client


def write_rgb_pngs(dataset, image_size, folder, limit=200):
    """The first `limit` test images at the model's input size as RGB PNGs (a gray image
    becomes R = G = B, as a camera frame of it would be). Returns (paths, uint8 pixels
    [N, H, W, C] as tftool feeds them, labels [N])."""
    from tftool import data

    os.makedirs(folder, exist_ok=True)
    paths, pixels, labels = [], [], []
    for batch, ys in data.test_batches(dataset, image_size, 64):
        for image, label in zip(batch, ys):
            if len(paths) == limit:
                break
            rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
            path = os.path.join(folder, f"{len(paths)}.png")
            Image.fromarray(rgb, mode="RGB").save(path)
            paths.append(path)
            pixels.append(image)
            labels.append(int(label))
    return paths, np.stack(pixels), np.array(labels)


def check_exports(mediapipe_python, export_dir, name, paths, pixels, labels, class_names,
                  min_accuracy):
    """For every <name>_*.tflite in export_dir: MediaPipe loads it unmodified, its top-1
    agrees with litert.Runner on ≥ 99% of the images, its category names come from the
    embedded labels, its scores sum to 1 ± 0.01, its accuracy ≥ min_accuracy; LiteRT's
    serving_default signature runner, called by name, gives the Runner's scores.
    Returns {variant: MediaPipe accuracy}."""
    from ai_edge_litert.interpreter import Interpreter

    from tftool.litert import Runner

    accuracies = {}
    files = sorted(glob.glob(os.path.join(export_dir, f"{name}_*.tflite")))
    assert files
    for path in files:
        variant = os.path.basename(path)[len(name) + 1:-len(".tflite")]
        ours = Runner(model_path=path)(pixels)
        results = mediapipe_client.classify(mediapipe_python, path, paths)
        top = np.array([r["categories"][0]["index"] for r in results])
        agreement = float(np.mean(top == ours.argmax(-1)))
        assert agreement >= 0.99, (variant, agreement)
        for r in results:
            assert {c["category_name"] for c in r["categories"]} == set(class_names), variant
            assert abs(sum(c["score"] for c in r["categories"]) - 1.0) <= 0.01, variant
            assert all(c["category_name"] == class_names[c["index"]] for c in r["categories"])
        accuracies[variant] = float(np.mean(top == labels))
        assert accuracies[variant] >= min_accuracy, (variant, accuracies[variant])
        interpreter = Interpreter(model_path=path)
        runner = interpreter.get_signature_runner("serving_default")
        image = np.repeat(pixels[:1], 3, -1) if pixels.shape[-1] == 1 else pixels[:1]
        details = runner.get_input_details()["image"]
        fed = image if details["dtype"] == np.uint8 else (
            image.astype(np.float32) / 255.0 if details["dtype"] == np.float32 else None)
        if fed is not None:
            out = runner(image=fed.astype(details["dtype"]))["probabilities"]
            scale, zero = runner.get_output_details()["probabilities"]["quantization"]
            scores = (out.astype(np.float32) - zero) * scale if scale else out
            np.testing.assert_allclose(scores[0], ours[0], atol=1e-5)
    return accuracies
