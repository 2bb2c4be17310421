"""ONNX export: EXPORT_DIR/<name>_{float32,int8}.onnx beside the .tflite files, each scored,
held to the accuracy gate and written with its card, for ONNX Runtime (`tftool-export --onnx`).
"""
import hashlib
import os

from tftool import UserError, evaluate, fileio, stages, stats
from tftool.export import card, gate


ONNX_VARIANTS = ("float32", "int8")


def export_onnx(workdir, export_dir, name, dataset, image_size, representative_dataset,
                max_accuracy_drop, gate_rule="paired"):
    """EXPORT_DIR/<name>_{float32,int8}.onnx beside the .tflite files, for ONNX Runtime.

    float32: the float Keras model through tf2onnx (onnx_runtime.to_onnx_float32: the same
    serving function as the TFLite export, softmax inside, input "image" float32 in [0, 1]
    at the trained channel count); int8: ONNX Runtime's quantize_static in QDQ format,
    calibrated on the same `representative_dataset` as the TFLite int8. Both are scored on
    the test and validation splits beside the float Keras model, held to the same accuracy
    gate, and get a card <file>.json (runtime, input, accuracies with intervals, gate).
    Returns: (written paths, refused [(variant, reason)]).
    Raises: UserError: the onnx extra is not installed (onnx_runtime.require), or the model
      does not convert (an op tf2onnx cannot map: the line names it).
    """
    from tftool import data, onnx_runtime, progress

    onnx_runtime.require()
    float_model = fileio.load_model(stages.model_path(workdir, "float"))
    try:
        contents = {"float32": onnx_runtime.to_onnx_float32(float_model)}
        contents["int8"] = onnx_runtime.to_onnx_int8(contents["float32"],
                                                     representative_dataset)
    except Exception as e:  # noqa: BLE001  tf2onnx and onnx raise many types (an op tf2onnx
        # cannot map, onnx's InferenceError/ValidationError in quantization, ...): one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"ONNX export failed ({first})") from e
    runners = {v: onnx_runtime.Runner(model_content=c) for v, c in contents.items()}
    scorers = {"float": evaluate.keras_scorer(float_model),
               **{v: evaluate.tflite_scorer(r) for v, r in runners.items()}}
    results = {split: evaluate.evaluate(scorers, data.test_batches(dataset, image_size,
                                                                   split=split),
                                        dataset.class_names, reference="float")
               for split in ("test", "validation")}
    written, refused = [], []
    for variant, content in contents.items():
        path = os.path.join(export_dir, f"{name}_{variant}.onnx")
        paired = stats.paired_drop(results["test"]["float"][evaluate.CORRECT],
                                   results["test"][variant][evaluate.CORRECT])
        reason = gate.refusal(f"{variant} (ONNX)", paired, max_accuracy_drop, path,
                              "the float Keras model", gate_rule)
        if reason:
            refused.append((f"onnx_{variant}", reason))
            continue
        runner = runners[variant]
        onnx_card = {
            "name": name, "variant": variant, "format": "onnx", "runtime": "onnxruntime",
            "file": os.path.basename(path), "source_stage": "float", "dataset": dataset.name,
            "input": {"name": onnx_runtime.INPUT_NAME, "shape": [None, *runner.input_shape],
                      "dtype": "float32", "range": [0.0, 1.0], "formula": "x = pixel / 255",
                      "layout": "NHWC"},
            "output": {"name": runner.output_name, "meaning": "probabilities"},
            "quantization": ("QDQ (onnxruntime.quantization.quantize_static): uint8 "
                             "activations, int8 weights per channel, calibrated on the "
                             "TFLite int8's representative images" if variant == "int8"
                             else None),
            "class_names": dataset.class_names, "labels_file": "labels.txt",
            **card.accuracy_section({s: results[s][variant] for s in results}),
            "accuracy_gate": gate.section(paired, gate_rule, max_accuracy_drop,
                                          "the float Keras model",
                                          results["test"]["float"]["accuracy"]),
            "converter_versions": onnx_runtime.versions(),
        }
        card_path = path + ".json"
        onnx_card = card.carry_over(onnx_card, card_path, content)
        onnx_card["sha256"] = hashlib.sha256(content).hexdigest()
        if not fileio.same_bytes(path, content):
            fileio.write_bytes(path, content)
        fileio.write_json(card_path, onnx_card)
        progress.write(f"{path}: {len(content) / 1024:.1f} KiB, test accuracy "
                       f"{stats.format_accuracy(results['test'][variant]['accuracy'], paired.n)}"
                       f", vs float {paired.describe(counts=False)}")
        written.append(path)
    return written, refused
