"""Classify images with a .tflite in MediaPipe Tasks' ImageClassifier, as an app would.

Run with the MediaPipe environment's python (`make mediapipe` builds .venv-mediapipe/; it is
kept apart from the training venv because mediapipe 1.x needs absl-py 2 and tfmot pins
absl-py 1). Imports nothing from tftool or TensorFlow:

    .venv-mediapipe/bin/python tftool/clients/mediapipe_classify.py MODEL.tflite A.png B.png

Prints JSON to stdout: [{"image": PATH, "categories": [{"index", "category_name", "score"},
... all classes, best first]}, ...]. Exit 1 with the MediaPipe error on stderr when the model
cannot be loaded or run.

What MediaPipe (1.2.2, mediapipe/tasks/cc/vision/utils/image_tensor_specs.cc and the
classification postprocessing graph) requires of the model:
  * one subgraph, one input tensor 1 x H x W x 3 (or 4), uint8 or float32. A uint8 input gets
    the raw 0..255 pixels (its quantization parameters are not applied), so it must have been
    converted with scale 1/255 and zero point 0 for a model trained on [0, 1] pixels;
  * a float32 input needs NormalizationOptions metadata (1 or 3 mean/std values): the input is
    (pixel - mean) / std; without it MediaPipe refuses the model ("requires specifying
    NormalizationOptions metadata"). ImageProperties, if present, must say RGB;
  * the image is resized (bilinear) to H x W by MediaPipe itself;
  * an output tensor of scores [1, K], float32 or uint8 (dequantized with its own
    parameters); class names come from a TENSOR_AXIS_LABELS associated file of the output
    tensor metadata (without it category_name is empty). Score calibration is optional and
    not used: the scores are the model's own (softmax probabilities for tftool models).
Docs: https://ai.google.dev/edge/mediapipe/solutions/vision/image_classifier/python and
https://ai.google.dev/edge/mediapipe/solutions/vision/image_classifier#models.
"""
import json
import sys


def classify(model_path, image_paths):
    """Runs MediaPipe's ImageClassifier (CPU, all classes) on `image_paths`.

    Images are decoded with OpenCV (a mediapipe dependency) to 8-bit RGB, grayscale and RGBA
    included, and given as SRGB mp.Image. Returns the list described in the module docstring.
    """
    import cv2
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options

    options = vision.ImageClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_path=model_path,
                                              delegate=base_options.BaseOptions.Delegate.CPU),
        max_results=-1)  # -1: all classes
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in image_paths:
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{path}: not an image OpenCV can read")
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            result = classifier.classify(image)
            categories = result.classifications[0].categories
            results.append({"image": path, "categories": [
                {"index": int(c.index), "category_name": c.category_name,
                 "score": float(c.score)} for c in categories]})
    return results


def main(argv):
    if len(argv) < 3:
        print(f"usage: {argv[0]} MODEL.tflite IMAGE...", file=sys.stderr)
        return 2
    try:
        results = classify(argv[1], argv[2:])
    except Exception as e:  # noqa: BLE001  (any MediaPipe failure is the client's answer)
        print(f"mediapipe_classify: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(results, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
