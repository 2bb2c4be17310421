"""Classify image files with an exported .tflite, using nothing but the file itself.

Everything the preprocessing needs comes from the model's own TFLite metadata
(tftool.export.metadata.read): input size and channels from the input tensor, RGB or
grayscale from ImageProperties, the input dtype, NormalizationOptions for float inputs, and
the class names from labels.txt. So an app that follows the metadata, such as MediaPipe Tasks'
ImageClassifier, sees the same pixels: images are decoded with PIL, converted to RGB or L,
resized bilinearly to the model's input size; a float32 input gets (pixel - mean) / std, a
uint8 input the raw 0..255 pixels (as MediaPipe feeds it). Runs on LiteRT's Interpreter.
"""
import os

import numpy as np

from tftool import UserError
from tftool.export import metadata

EXPORT_HINT = "export it with tftool-export, which embeds labels and normalization"


def load_model_info(tflite_path):
    """(model bytes, metadata.read dict) for `tflite_path`.

    Raises:
      UserError: missing/unreadable file, or not a .tflite with tftool's metadata (names the
        file and the fix).
    """
    try:
        with open(tflite_path, "rb") as f:
            model = f.read()
    except OSError as e:
        raise UserError(f"{tflite_path}: cannot read the model ({e.strerror}); give the path "
                        f"of an exported .tflite") from e
    try:
        info = metadata.read(model)
    except ValueError as e:
        raise UserError(f"{tflite_path}: {e}; {EXPORT_HINT}") from e
    if info["input"]["dtype"] not in ("float32", "uint8"):
        raise UserError(f"{tflite_path}: input type {info['input']['dtype']} is not float32 "
                        f"or uint8; {EXPORT_HINT}")
    return model, info


def preprocess(image_path, info):
    """One image file -> the model's input tensor [1, H, W, C] (float32 or uint8).

    Args:
      image_path: PNG, JPEG or any format PIL decodes, any size and mode (L, RGB, RGBA, P,
        ...; alpha is dropped).
      info: metadata.read() of the model.
    Raises:
      UserError: missing file or not an image (names the file).
    """
    from PIL import Image, UnidentifiedImageError

    _, height, width, channels = info["input"]["shape"]
    try:
        with Image.open(image_path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, np.uint8).reshape(1, height, width, channels)
    except FileNotFoundError as e:
        raise UserError(f"{image_path}: no such file; give paths of PNG or JPEG images") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{image_path}: not an image PIL can decode ({e}); give a PNG or "
                        f"JPEG file") from e
    if info["input"]["dtype"] == "uint8":
        return pixels
    norm = info["input"]["normalization"]
    if norm is None:
        raise UserError(f"the model's float32 input has no NormalizationOptions; {EXPORT_HINT}")
    mean = np.asarray(norm["mean"], np.float32)
    std = np.asarray(norm["std"], np.float32)
    return (pixels.astype(np.float32) - mean) / std


# What a folder argument contributes: files with these extensions, found recursively.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def image_paths(arguments):
    """Expands the command line's image arguments, in order: a file stays itself (whatever
    its extension: preprocess says if it is not an image), a folder becomes its image files
    (IMAGE_EXTENSIONS, recursively, sorted).

    Returns: list of (path, problem): problem is None, or a one-line reason for an argument
      that gives no image (a missing path, a folder without images).
    """
    found = []
    for argument in arguments:
        path = os.fspath(argument)
        if os.path.isdir(path):
            files = sorted(os.path.join(root, name)
                           for root, _, names in os.walk(path) for name in names
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            if not files:
                found.append((path, f"a folder with no {'/'.join(IMAGE_EXTENSIONS)} images"))
            found += [(f, None) for f in files]
        elif not os.path.exists(path):
            found.append((path, "no such file; give paths of PNG or JPEG images or folders"))
        else:
            found.append((path, None))
    return found


def classify(tflite_path, image_paths_or_folders, top_k=5, num_threads=None):
    """Top-k classes of each image; an image that cannot be read is reported, not fatal.

    Args:
      tflite_path: a .tflite written by tftool (metadata_write.populate).
      image_paths_or_folders: image files (see preprocess) and folders of them (image_paths).
      top_k: classes per image (clipped to the number of classes), ≥ 1.
      num_threads: LiteRT CPU threads (None: the runtime's default).
    Returns:
      [{"image": path, "top_k": [{"index": int, "label": str, "probability": float}, ...]}
       or {"image": path, "error": one-line reason}] in input order (folders expanded),
      classes best first; probabilities are the softmax output (a logits model gets a
      softmax here), uint8 outputs dequantized.
    Raises:
      UserError: bad model file, top_k < 1, no arguments (each names the fix).
    """
    from ai_edge_litert.interpreter import Interpreter

    if top_k < 1:
        raise UserError(f"--top_k={top_k}: must be ≥ 1")
    if not image_paths_or_folders:
        raise UserError("no images given; pass image paths or folders after the flags")
    model, info = load_model_info(tflite_path)
    try:
        interpreter = Interpreter(model_content=model, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{tflite_path}: LiteRT cannot load it ({str(e).splitlines()[0]}); "
                        f"{EXPORT_HINT}") from e
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    labels = info["labels"]
    results = []
    for path, problem in image_paths(image_paths_or_folders):
        if problem is None:
            try:
                x = preprocess(path, info)
            except UserError as e:
                problem = str(e)[len(f"{path}: "):] if str(e).startswith(f"{path}: ") else str(e)
        if problem is not None:
            results.append({"image": path, "error": problem})
            continue
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        scores = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero_point = out["quantization"]
            scores = (scores.astype(np.float32) - zero_point) * scale
        if info["output"]["kind"] == "logits":
            scores = np.exp(scores - scores.max())
            scores = scores / scores.sum()
        order = np.argsort(-scores, kind="stable")[:top_k]
        results.append({"image": path, "top_k": [
            {"index": int(i), "label": labels[i], "probability": float(scores[i])}
            for i in order]})
    return results
