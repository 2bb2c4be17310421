"""A trained Keras model of the user's as WORKDIR/float: `tftool-import --keras_model=PATH`.

What every later stage expects of WORKDIR/float/model.h5 (stage_runner.Job.build): a flat
tf_keras functional model, float32 [N, H, W, C] images in [0, 1] -> [N, K] logits, scored on
the data set's test and validation splits. A user's model is brought to that contract:
  1. loaded: tf_keras .h5 / .keras / SavedModel, or a Keras 3 .keras file (its metadata.json
     says which Keras wrote it), with compile=False;
  2. rebuilt flat in tf_keras with its weights (tftool/rebuild.py: Keras 3 -> tf_keras, nested
     models flattened, augmentation layers left out); a subclassed model, which has no graph
     to rebuild, is kept whole as a SavedModel behind one layer (tftool/graphless.py);
  3. its input range found: the scaling the model expects of pixels (0-1, -1-1 or 0-255) is
     the one under which it classifies the validation images best (or --input_range); the
     map from [0, 1] to it is folded into the model's own leading Rescaling (removed when it
     becomes the identity) or first convolution's kernel, else a Rescaling layer goes in front;
  4. a softmax at its output removed (logits out: export adds the softmax back, QAT and
     distillation train on logits);
  5. checked: its softmax outputs on test images are compared with the original model's own
     probabilities; above --max_output_difference nothing is written;
  6. written as the float stage (stage_runner.write_stage), with config.json (the data
     settings and the source file's sha256) and metrics.json (test and validation accuracy,
     the class names, the photo or digits preset's augmentation for later fine-tuning), with
     a note when validation scores above test beyond noise (validation_seen).
"""
import json
import os
import shutil
import zipfile

import numpy as np

from tftool import UserError, first_line

# --input_range -> (scale, offset) mapping [0, 1] pixels to the range the model expects
INPUT_RANGES = {"0_1": (1.0, 0.0), "-1_1": (2.0, -1.0), "0_255": (255.0, 0.0)}
RANGE_TEXT = {"0_1": "0-1", "-1_1": "-1-1", "0_255": "0-255"}
RANGE_LAYER = "tftool_input_range"
RANGE_IMAGES = 512  # validation images that decide the input range
COMPARE_IMAGES = 100  # test images the rebuilt model's outputs are compared on


def keras_version(path):
    """The Keras major version that wrote a `.keras` file ("2" or "3"), from its
    metadata.json; None for other formats. Raises: UserError: not a .keras zip."""
    if not path.endswith(".keras"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise UserError(f"--keras_model={path} is not a readable .keras file "
                        f"({first_line(e)}); save it again with model.save('model.keras')") \
            from e
    return str(metadata.get("keras_version", "2")).split(".")[0]


def load_source(path, custom_objects=None):
    """The user's model file, loaded uncompiled, as (model, format text).

    Args:
      path: a tf_keras `.h5`/`.hdf5`, a `.keras` file written by tf_keras or Keras 3, or a
        tf_keras SavedModel folder.
      custom_objects: --custom_objects, the user's file.py or package.module that registers
        the classes the file needs (models.user_module), imported first; or None.
    Raises:
      UserError: a missing path, an unknown extension, code that does not import, a class
        nobody registered (names --custom_objects), or a file that does not load (the
        loader's first line, with the fix).
    """
    if custom_objects:
        from tftool import models

        models.user_module(custom_objects, f"--custom_objects={custom_objects}")
    if not os.path.exists(path):
        raise UserError(f"--keras_model={path}: no such file or folder")
    if os.path.isdir(path):
        kind = "SavedModel"
    elif path.endswith((".h5", ".hdf5")):
        kind = "HDF5"
    elif path.endswith(".keras"):
        kind = "Keras 3 .keras" if keras_version(path) == "3" else "tf_keras .keras"
    else:
        raise UserError(f"--keras_model={path}: expected a .keras or .h5 file or a SavedModel "
                        f"folder")
    try:
        if kind == "Keras 3 .keras":
            import keras

            return keras.saving.load_model(path, compile=False), kind
        import tf_keras

        return tf_keras.models.load_model(path, compile=False), kind
    except Exception as e:  # noqa: BLE001  (any loader failure is the file's, said in one line)
        missing = _missing_class(e)
        if missing:
            raise UserError(f"--keras_model={path} needs the class {missing!r}, which is not "
                            f"registered here: pass --custom_objects=file.py (or package."
                            f"module) that defines it with @keras.saving."
                            f"register_keras_serializable()") from e
        hint = ("a Keras 3 SavedModel from model.export() has no layers to rebuild: save "
                "model.save('model.keras') instead" if kind == "SavedModel" else
                "custom layers must be importable and registered "
                "(keras.saving.register_keras_serializable)")
        raise UserError(f"--keras_model={path} does not load as {kind} ({first_line(e)}); "
                        f"{hint}") from e


def _missing_class(error):
    """The class name Keras could not locate, from an error or the errors it chains, or None."""
    import re

    while error is not None:
        found = re.search(r"Could not locate class '([^']+)'", str(error))
        if found:
            return found.group(1)
        error = error.__cause__ or error.__context__
    return None


def source_probabilities(source, images):
    """The source model's class probabilities [N, K] for `images` (already in its range):
    its output as is when it ends in a softmax, else a softmax of it."""
    import tensorflow as tf

    out = np.asarray(source(images, training=False), np.float64)
    if ends_in_softmax_values(out):
        return out
    return tf.nn.softmax(out.astype(np.float32)).numpy().astype(np.float64)


def ends_in_softmax_values(out):
    """Whether an output [N, K] already holds probabilities (rows in [0, 1] summing to 1)."""
    return bool(np.all(out >= 0) and np.all(out <= 1)
                and np.allclose(out.sum(axis=-1), 1.0, atol=1e-4))


def softmax_layer(model):
    """(layer name, how) when the tf_keras model's output is a softmax: ("dense", "activation")
    for a layer with activation="softmax", ("softmax", "layer") for a Softmax/Activation
    layer; None otherwise."""
    layer = model.get_layer(model.outputs[0].node.layer.name)
    config = layer.get_config()
    if type(layer).__name__ == "Softmax" or (type(layer).__name__ == "Activation"
                                            and config.get("activation") == "softmax"):
        return layer.name, "layer"
    if config.get("activation") == "softmax":
        return layer.name, "activation"
    return None


def to_contract(model, input_range):
    """The flat tf_keras `model` as the float stage's contract: [0, 1] input (the range map
    folded into a leading Rescaling or the first Conv2D/DepthwiseConv2D/Dense kernel, else a
    Rescaling layer named RANGE_LAYER in front) and logits out (a final
    softmax removed: the activation of the last layer set to linear, or a Softmax layer
    dropped). Exact: the same weights, the same operations up to the logits.
    Returns: (tf_keras.Model, whether a softmax was removed)."""
    import tf_keras as keras

    config = model.get_config()
    found = softmax_layer(model)
    if found:
        name, how = found
        if how == "activation":
            for layer in config["layers"]:
                if layer["name"] == name:
                    layer["config"]["activation"] = "linear"
        else:  # the model's output becomes the softmax layer's input
            layer = next(entry for entry in config["layers"] if entry["name"] == name)
            config["output_layers"] = [list(layer["inbound_nodes"][0][0][:3])]
            config["layers"] = [entry for entry in config["layers"] if entry["name"] != name]
    scale, offset = INPUT_RANGES[input_range]
    first = _leading_rescaling(model)
    linear = None if first is not None else _linear_reader(model)
    input_name = config["input_layers"][0][0]
    kernel_scale = None
    # Where the range goes, measured on tfmot 0.8.1 + the TFLite converter: a QAT model whose
    # first layer is Rescaling(1) or Rescaling(255) converts to a qat_int8 file 18-57 points
    # below its Keras accuracy on digits (Rescaling(2, -1) and (0.5) convert within noise;
    # docs/developers.md, "Traps"). So the range is folded away where that is exact.
    if input_range != "0_1" and first is not None:
        # into the model's own Rescaling: (scale*u + offset)*s + o; dropped if that is 1*u + 0
        entry = next(e for e in config["layers"] if e["name"] == first.name)
        s, o = float(entry["config"]["scale"]), float(entry["config"]["offset"])
        entry["config"].update(scale=scale * s, offset=offset * s + o)
        if abs(scale * s - 1.0) < 1e-6 and abs(offset * s + o) < 1e-6:
            _repoint(config, first.name, input_name)
            config["layers"].remove(entry)
    elif input_range != "0_1" and offset == 0.0 and linear is not None:
        kernel_scale = (linear.name, scale)  # conv(255*u) = (255*conv)(u)
    elif input_range != "0_1":
        _repoint(config, input_name, RANGE_LAYER)
        config["layers"].insert(1, {
            "class_name": "Rescaling", "name": RANGE_LAYER,
            "config": {"name": RANGE_LAYER, "scale": scale, "offset": offset,
                       "dtype": "float32", "trainable": False},
            "inbound_nodes": [[[input_name, 0, 0, {}]]]})
    rebuilt = keras.Model.from_config(config)
    names = {layer.name for layer in rebuilt.layers}
    for layer in model.layers:
        if layer.name in names:
            weights = layer.get_weights()
            if kernel_scale and layer.name == kernel_scale[0]:
                weights[0] = weights[0] * kernel_scale[1]  # the kernel; the bias is not scaled
            rebuilt.get_layer(layer.name).set_weights(weights)
    return rebuilt, bool(found)


def range_correct(model, images, labels):
    """{input_range: bool [N], whether `model` classifies each of `images` ([0, 1] float32
    [N, H, W, C]) right when they are fed in that range}: the data's answer to "which scaling
    does this model expect?"."""
    correct = {}
    for name, (scale, offset) in INPUT_RANGES.items():
        out = np.asarray(model.predict(images * scale + offset, batch_size=64, verbose=0))
        correct[name] = np.argmax(out, axis=-1) == labels
    return correct


def _repoint(config, old, new):
    """Makes every call in a tf_keras functional `config` that reads layer `old` read `new`."""
    for layer in config["layers"]:
        for node in layer.get("inbound_nodes", []):
            for entry in node:
                if entry[0] == old:
                    entry[0] = new
    config["output_layers"] = [[new if e[0] == old else e[0], *e[1:]]
                               for e in config["output_layers"]]


def _readers(model):
    """The layers of the flat tf_keras `model` that read its input."""
    return [layer for layer in model.layers[1:]
            if any(node.inbound_layers is model.layers[0]
                   or model.layers[0] in list(np.atleast_1d(node.inbound_layers))
                   for node in layer._inbound_nodes)]  # noqa: SLF001  (the graph's edges)


def _linear_reader(model):
    """The one layer reading the input when it is a Conv2D, DepthwiseConv2D or Dense called
    once, without a kernel regularizer or constraint, else None: for a range 0-255 (offset 0)
    its kernel times 255 on [0, 1] computes what it computed on 0-255 (zero padding too)."""
    readers = _readers(model)
    if len(readers) != 1 or type(readers[0]).__name__ not in ("Conv2D", "DepthwiseConv2D",
                                                               "Dense"):
        return None
    layer, config = readers[0], readers[0].get_config()
    constrained = [k for k in ("kernel_regularizer", "depthwise_regularizer",
                               "kernel_constraint", "depthwise_constraint") if config.get(k)]
    if len(layer._inbound_nodes) != 1 or constrained:  # noqa: SLF001
        return None  # a shared layer, or a penalty/constraint a scaled kernel would change
    return layer


def _leading_rescaling(model):
    """The Rescaling layer (scalar scale and offset) that alone reads the flat tf_keras
    `model`'s input, or None."""
    readers = _readers(model)
    if (len(readers) != 1 or type(readers[0]).__name__ != "Rescaling"
            or len(readers[0]._inbound_nodes) != 1):  # noqa: SLF001  (called once only)
        return None
    config = readers[0].get_config()
    if np.ndim(config["scale"]) or np.ndim(config["offset"]):
        return None  # per-channel: kept, the range goes in front of it
    return readers[0]


def first_rescaling(model):
    """(scale, offset) of the Rescaling layer that reads the flat tf_keras `model`'s input, or
    None: what the model itself says of its input range (1/255: it takes 0-255 pixels)."""
    layer = _leading_rescaling(model)
    if layer is None:
        return None
    config = layer.get_config()
    return float(config["scale"]), float(config["offset"])


def implied_range(stated):
    """The range a leading Rescaling(scale, offset) says the model takes: "0_255" for a scale
    of 1/100 or less (1/255, 1/127.5: pixels), else None (it says nothing certain)."""
    return "0_255" if stated and abs(stated[0]) <= 0.01 else None


def choose_range(model, images, labels, given="auto", num_classes=None, stated=None):
    """The input range: `given` unless "auto"; else the one whose validation accuracy is best
    by more than noise (Newcombe's paired 95% interval against the runner-up on the same
    images), or, within noise, the one the model's leading Rescaling implies (implied_range).

    Returns: (range name, {range: accuracy}, reason text).
    Raises: UserError: under "auto", the best range is near chance (chance.near_chance: a
      model of another data set or class order), or two ranges tie and the model says nothing
      (pass --input_range)."""
    from tftool import chance, stats

    correct = range_correct(model, images, labels)
    scores = {k: float(np.mean(v)) for k, v in correct.items()}
    shown = ", ".join(f"{RANGE_TEXT[k]} {v:.3f}" for k, v in scores.items())
    if given != "auto":
        return given, scores, f"--input_range={given} (validation accuracy {shown})"
    best, second = sorted(scores, key=scores.get, reverse=True)[:2]
    if chance.near_chance(scores[best], num_classes or 2, len(labels)):
        raise UserError(f"the model classifies the validation images no better than chance in "
                        f"any input range ({shown}): is it trained on this data set, with its "
                        f"classes in this order (the sorted folder names)? Pass --input_range "
                        f"to skip this check and --allow_chance_accuracy to import it anyway")
    reason = f"the best of validation accuracy {shown} on {len(labels)} images"
    if stats.paired_drop(correct[best], correct[second]).low <= 0:  # a tie within noise
        implied = implied_range(stated)
        if implied not in (best, second):
            raise UserError(f"input ranges {RANGE_TEXT[best]} and {RANGE_TEXT[second]} classify "
                            f"the validation images equally well within noise ({shown} on "
                            f"{len(labels)} images): pass --input_range={best} or "
                            f"--input_range={second}, the range the model was trained on")
        best, reason = implied, f"{reason}; tied within noise, the model's Rescaling decides"
    return best, scores, reason


def _arrays(dataset, size, split, count):
    """Up to `count` images of `split` as (float32 [n, H, W, C] in [0, 1], int64 [n])."""
    from tftool import data

    images, labels, seen = [], [], 0
    for x, y in data.test_batches(dataset, size, batch_size=64, split=split):
        images.append(x.astype(np.float32) / 255.0)
        labels.append(y)
        seen += len(y)
        if seen >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def _check_classes(classes, dataset, path):
    if classes != dataset.num_classes:
        raise UserError(f"--keras_model={path} has {classes} outputs and --dataset="
                        f"{dataset.name} has {dataset.num_classes} classes "
                        f"({', '.join(dataset.class_names[:5])}...): import it with the data "
                        f"set it was trained on")


def _graphless(source, pending, shape, dataset, path):
    """A subclassed `source` saved whole into the folder `pending` (graphless.py) and wrapped
    as a one-layer tf_keras model, returned; its classes checked by a call on the data's
    shape. Raises: UserError: a call that fails (pass the size it was trained at)."""
    from tftool import graphless

    try:
        trial = np.asarray(source(np.random.default_rng(0).uniform(
            0, 1, (4, *shape)).astype(np.float32), training=False))
    except Exception as e:  # noqa: BLE001  (the user's call() failing is one line)
        raise UserError(f"--keras_model={path} (subclassed) cannot be called on [N, "
                        f"{', '.join(map(str, shape))}] images: {first_line(e)}; pass the "
                        f"--image_size (and --channels) it was trained at") from e
    _check_classes(trial.shape[-1], dataset, path)
    kind = "probabilities" if ends_in_softmax_values(trial) else "logits"
    graphless.save(source, pending, shape)
    return graphless.wrap(pending, shape, kind)


def check_shapes(source, dataset, path):
    """Refuses a model whose input channels or number of classes differ from the data set's.
    Returns the model's input (height, width), None where open (or subclassed: no input).
    Raises: UserError naming the mismatch and the fix."""
    from tftool import rebuild

    try:
        rebuild.graph_config(source)
    except rebuild.Subclassed:
        return None  # no declared input: the data's size; its classes are checked by a call
    shape = tuple(source.inputs[0].shape[1:]) if getattr(source, "inputs", None) else None
    if shape is None or len(shape) != 3:
        raise UserError(f"--keras_model={path}: input {shape} is not one image [H, W, C]")
    channels = dataset.image_shape[-1]
    if shape[2] is not None and shape[2] != channels:
        raise UserError(f"--keras_model={path} takes {shape[2]}-channel images and "
                        f"--dataset={dataset.name} has {channels}: pass --channels={shape[2]}")
    _check_classes(source.outputs[0].shape[-1], dataset, path)
    return None if None in shape[:2] else (int(shape[0]), int(shape[1]))


def _convert(source, kind, path, context, pending, input_range, max_output_difference):
    """Steps 2-5 of the module docstring for import_float: returns (the contract model, the
    flat model before it, the report for metrics.json's "imported"); a subclassed model is
    saved to the folder `pending` (the caller moves or removes it). Prints what was done.
    Raises: UserError: see import_float."""
    import tensorflow as tf

    from tftool import rebuild

    dataset, size = context.dataset, tuple(context.image_size)
    shape = size + (dataset.image_shape[-1],)
    subclassed = False
    try:
        flat, dropped = rebuild.flat_model(source, input_shape=shape)
    except rebuild.Subclassed:  # kept whole: graphless.py
        flat, dropped, subclassed = _graphless(source, pending, shape, dataset, path), [], True
    images, labels = _arrays(dataset, size, "validation", RANGE_IMAGES)
    stated = first_rescaling(flat)
    chosen, scores, reason = choose_range(flat, images, labels, input_range,
                                          dataset.num_classes, stated)
    model, stripped = to_contract(flat, chosen)
    if subclassed:
        stripped = flat.layers[-1].outputs_kind == "probabilities"
    test_images, _ = _arrays(dataset, size, "test", COMPARE_IMAGES)
    scale, offset = INPUT_RANGES[chosen]
    expected = source_probabilities(source, test_images * scale + offset)
    got = tf.nn.softmax(model(test_images, training=False)).numpy().astype(np.float64)
    difference = float(np.max(np.abs(expected - got)))
    line = (f"{kind}, " + ("subclassed: kept whole as a SavedModel (no QAT, pruning or "
                           "clustering: tfmot needs its layers)" if subclassed else
                           f"{len(flat.layers)} layers flat")
            + (f" ({len(dropped)} augmentation layers left out)" if dropped else "")
            + f"; input range {RANGE_TEXT[chosen]} ({reason}"
            + (f"; the model's first layer rescales by {stated[0]:g}" if stated else "")
            + ")" + ("; softmax output removed (logits out)" if stripped else ""))
    print(f"tftool-import: {line}", flush=True)
    if difference > max_output_difference:
        raise UserError(f"the rebuilt model's probabilities differ from the original's by "
                        f"up to {difference:.2e} on {len(test_images)} test images (allowed "
                        f"{max_output_difference:g}); nothing written. A layer computes "
                        f"differently in tf_keras: pass --max_output_difference to accept it")
    print(f"tftool-import: outputs match the original within {difference:.1e} (largest "
          f"|difference| of class probabilities on {len(test_images)} test images)",
          flush=True)
    report = {"input_range": chosen, "range_accuracy": scores, "softmax_removed": stripped,
              "augmentation_layers_removed": dropped, "subclassed": subclassed,
              "max_output_difference": difference, "compared_images": len(test_images)}
    return model, flat, report


def validation_seen(metrics, dataset):
    """A note when the model scores the validation split above the test split beyond both
    95% intervals: it most likely trained on those images (tftool draws validation from train/
    unless the data set has its own), so whatever chooses on validation (selective int8,
    --target_sparsity=auto, --temperature=auto) sees optimistic figures. None otherwise."""
    if "validation_accuracy" not in metrics or "test_accuracy" not in metrics:
        return None
    if metrics["validation_accuracy_interval"][0] <= metrics["test_accuracy_interval"][1]:
        return None
    source = (dataset.validation_split or {}).get("source")
    fix = ("give the data set a validation/ folder of images the model never saw"
           if source == "train" else "check which images the model was trained on")
    return (f"validation accuracy {metrics['validation_accuracy']:.4f} is above test accuracy "
            f"{metrics['test_accuracy']:.4f} beyond both intervals: the model probably trained "
            f"on the validation images, so choices made on them will be optimistic; {fix}")


def _settle(pending, out, flat, input_range):
    """Moves a subclassed model's pending SavedModel to OUT/saved_model and returns the
    contract model that points there (what model.h5 records)."""
    from tftool import graphless

    final = os.path.join(out, graphless.FOLDER)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(pending, final)
    layer = flat.layers[-1]
    model, _ = to_contract(graphless.wrap(final, flat.input_shape[1:], layer.outputs_kind),
                           input_range)
    return model


def import_float(context, path, source, kind, input_range="auto", max_output_difference=1e-5,
                 settings=None):
    """Writes WORKDIR/float from the loaded user model `source` (see the module docstring).

    Args:
      context: stage_runner.Context of the float stage (its image_size is the model's).
      path: the model file or folder (recorded with its sha256); kind: load_source's format.
      input_range: "auto" or a key of INPUT_RANGES.
      max_output_difference: the largest |difference| of class probabilities allowed between
        the rebuilt and the original model on COMPARE_IMAGES test images.
      settings: what config.json records (the data settings and the import's own).
    Returns: the metrics dict written, or None when WORKDIR/float is complete (skipped).
    Raises:
      UserError: a model that cannot be rebuilt (rebuild.Unconvertible), outputs that differ
        beyond the tolerance, no range better than chance, a near-chance model, a folder made
        from another model (without --overwrite), a locked folder.
    """
    from tftool import evaluate, fileio, graphless, stage_runner, stages
    from tftool.train import presets

    workdir, dataset, size = context.workdir, context.dataset, tuple(context.image_size)
    out = stages.stage_dir(workdir, "float")
    with stage_runner.stage_lock(out):
        recorded = fileio.read_json_object(os.path.join(out, "config.json")) or {}
        if (not context.overwrite and recorded
                and recorded.get("keras_model_sha256") != settings["keras_model_sha256"]):
            made = (f"imported from {recorded['keras_model']} (another file, or the file since "
                    f"changed)" if recorded.get("keras_model") else "trained by tftool-train")
            raise UserError(f"{out} was {made}; pass --overwrite to import over it (the later "
                            f"stages of {workdir} then start again), or use another --workdir")
        # the path may differ for the same file (the sha256 says): recorded, not compared
        stage_runner.check_config(out, settings, overwrite=context.overwrite, write=False,
                                  free=("keras_model",))
        complete, _ = stage_runner.is_complete(workdir, "float", overwrite=context.overwrite)
        if complete:
            return None
        pending = os.path.join(out, ".saved_model.pending")  # a subclassed model's, if any
        try:
            model, flat, report = _convert(source, kind, path, context, pending, input_range,
                                           max_output_difference)
            preset, why = presets.choose("auto", dataset.name, dataset.image_shape[-1], size,
                                         dataset.hflip_safe)
            metrics = {
                **evaluate.keras_metrics(model, dataset, size, splits=context.splits),
                "validation_split": dataset.validation_split, "test_split": dataset.test_split,
                "stage": "float", "model": settings["model"], "dataset": dataset.name,
                "input_shape": list(model.input_shape[1:]), "class_names": dataset.class_names,
                "params": graphless.count_params(model),
                # what later stages fine-tune with: the images a model of this data trains on
                "augment": True, "augmentation": preset.augmentation,
                "hflip": dataset.hflip_safe if preset.hflip is None else preset.hflip,
                "imported": {"path": os.path.abspath(path), "format": kind,
                             "sha256": settings["keras_model_sha256"], **report,
                             "fine_tuning_images": f"the {preset.name} preset's ({why})"},
            }
            stage_runner.guard_chance(out, model, metrics, context, None)
            seen = validation_seen(metrics, dataset)
            if seen:
                metrics["imported"]["validation_seen"] = seen
                print(f"tftool-import: note: {seen}", flush=True)
            # Only now the new settings: a metrics.json beside them would mean "complete" to
            # the next run, so an older one goes first (the model it describes is replaced).
            if os.path.exists(os.path.join(out, "metrics.json")):
                os.remove(os.path.join(out, "metrics.json"))
            stage_runner.check_config(out, settings, overwrite=context.overwrite,
                                      free=("keras_model",))
            if report["subclassed"]:  # the SavedModel goes where model.h5 will point
                model = _settle(pending, out, flat, report["input_range"])
            stage_runner.write_stage(out, model, metrics, context.flags_text)
        finally:
            if os.path.isdir(pending):
                shutil.rmtree(pending)
    return metrics
