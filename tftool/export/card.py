"""The JSON model card written beside each .tflite: what an app needs to feed it and read
its output, where it came from, and (after the benchmark) how it measured."""
import datetime
import hashlib

import tftool
from tftool import UserError, fileio
from tftool.benchmark import rows

# Sections other commands add to a card (tftool-benchmark, tftool-export --micro); a new export
# keeps them (carry_over).
MEASURED_SECTIONS = ("benchmark", "micro")


def model_card(name, variant, stage, runner, dataset, image_size, accuracy, num_test,
               content=None, metadata_note=None):
    """The JSON model card of one .tflite: what an app needs to feed it and read its output.

    Args:
      runner: litert.Runner of the file; content: its bytes (the embedded metadata is read
        back, so the card says what the file itself says); metadata_note: why no metadata was
        embedded (None when it was).
    """
    import tensorflow as tf

    from tftool import data
    from tftool.export import metadata

    inp, out = runner.input_details, runner.output_details
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    in_dtype = inp["dtype"].__name__
    card = {
        "name": name, "variant": variant, "file": f"{name}_{variant}.tflite",
        "source_stage": stage, "dataset": dataset.name,
        "signature": {"key": "serving_default", "input": "image",
                      "output": "probabilities" if runner.outputs_probabilities else "logits"},
        "input": {"shape": [1, *runner.input_shape], "dtype": in_dtype,
                  "scale": float(in_scale), "zero_point": int(in_zero),
                  "color": "RGB" if runner.input_shape[-1] == 3 else "grayscale",
                  "rgb_to_gray_in_model": runner.input_shape[-1] == 3
                  and dataset.image_shape[-1] == 1},
        "output": {"shape": [1, len(dataset.class_names)], "dtype": out["dtype"].__name__,
                   "scale": float(out_scale), "zero_point": int(out_zero),
                   "meaning": "probabilities" if runner.outputs_probabilities else "logits"},
        "preprocessing": {
            "range": [0.0, 1.0], "size": list(image_size), "channels": runner.input_shape[-1],
            # [height, width] and where it came from (--image_size or the training images)
            "size_from": data.image_size_source(dataset, image_size)["text"],
            "resize": "bilinear, antialiased", "layout": "NHWC",
            "formula": ("x = pixel / 255" if in_dtype == "float32" else
                        "q = pixel (raw uint8, scale 1/255, zero point 0)" if in_dtype == "uint8"
                        else "x = pixel / 255; q = round(x / scale) + zero_point, clipped to "
                             "int8"),
        },
        "class_names": dataset.class_names, "labels_file": "labels.txt",
        "test_accuracy": accuracy, "test_examples": num_test,
        "sha256": hashlib.sha256(content).hexdigest() if content is not None else None,
        "tensorflow_version": tf.__version__, "tftool_version": tftool.__version__,
        "converter_versions": rows.versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if metadata_note is None and content is not None:
        embedded = metadata.read(content)
        card["metadata"] = {
            "embedded": True, "name": embedded["name"], "version": embedded["version"],
            "min_parser_version": embedded["min_parser_version"],
            "color_space": embedded["input"]["color_space"],
            "normalization": embedded["input"]["normalization"],
            "labels": "labels.txt inside the file (TENSOR_AXIS_LABELS), "
                      f"{len(embedded['labels'])} classes",
            "output_kind": embedded["output"]["kind"]}
    else:
        card["metadata"] = {"embedded": False, "reason": metadata_note}
    return card


def training_section(float_metrics):
    """How the float model every variant comes from was trained: its preset (train/presets.py),
    why it was chosen, the recipe it follows and the settings it ran with (metrics.json of
    WORKDIR/float). {} for a float model that predates presets."""
    float_metrics = float_metrics or {}
    if "preset" not in float_metrics:
        return {}
    return {"preset": float_metrics["preset"], "why": float_metrics.get("preset_reason"),
            "recipe": float_metrics.get("preset_source"), "model": float_metrics.get("model"),
            "settings": float_metrics.get("training", {})}


def accuracy_section(scores):
    """The card's accuracy figures from evaluate results {"test": ..., "validation": ...}:
    "<split>_accuracy" (fraction), "<split>_accuracy_interval" ([low, high], 95% Wilson) and
    "<split>_examples" for each split given."""
    section = {}
    for split, result in scores.items():
        section.update({f"{split}_accuracy": result["accuracy"],
                        f"{split}_accuracy_interval": [result["accuracy_low"],
                                                       result["accuracy_high"]],
                        f"{split}_examples": result["examples"]})
    return section


def carry_over(card, path, content):
    """`card` with the "benchmark" and "micro" sections of the card already at `path`.

    Export rewrites every card; the figures tftool-benchmark and `tftool-export --micro` put
    there must not vanish (a `make micro` after `make all` used to drop the benchmark's). Each
    section records the sha256 of the .tflite it measured ("file_sha256"); when `content`
    differs from it, the section is kept with "stale": a line saying to measure again. A
    damaged old card carries nothing (it is being replaced).
    """
    try:
        old = fileio.read_json_object(path) or {}
    except UserError:
        old = {}
    digest = hashlib.sha256(content).hexdigest()
    for key in MEASURED_SECTIONS:
        section = old.get(key)
        if not isinstance(section, dict):
            continue
        section = dict(section)
        measured = section.get("file_sha256")
        if measured != digest:
            command = "tftool-benchmark" if key == "benchmark" else "tftool-export --micro"
            section["stale"] = (f"measured on an earlier export of this variant (sha256 "
                                f"{(measured or 'unknown')[:12]}, now {digest[:12]}); run "
                                f"{command} again")
        else:
            section.pop("stale", None)
        card[key] = section
    return card
