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
     becomes the identity) or first convolution's kernel, else a Rescaling layer goes in front
     (steps 3 and 4: tftool/input_range.py);
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

from tftool import UserError, first_line, input_range as range_lib

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
    stated = range_lib.first_rescaling(flat)
    chosen, scores, reason = range_lib.choose_range(flat, images, labels, input_range,
                                                    dataset.num_classes, stated)
    model, stripped = range_lib.to_contract(flat, chosen)
    if subclassed:
        stripped = flat.layers[-1].outputs_kind == "probabilities"
    test_images, _ = _arrays(dataset, size, "test", COMPARE_IMAGES)
    scale, offset = range_lib.INPUT_RANGES[chosen]
    expected = source_probabilities(source, test_images * scale + offset)
    got = tf.nn.softmax(model(test_images, training=False)).numpy().astype(np.float64)
    difference = float(np.max(np.abs(expected - got)))
    line = (f"{kind}, " + ("subclassed: kept whole as a SavedModel (no QAT, pruning or "
                           "clustering: tfmot needs its layers)" if subclassed else
                           f"{len(flat.layers)} layers flat")
            + (f" ({len(dropped)} augmentation layers left out)" if dropped else "")
            + f"; input range {range_lib.RANGE_TEXT[chosen]} ({reason}"
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
    model, _ = range_lib.to_contract(graphless.wrap(final, flat.input_shape[1:],
                                                    layer.outputs_kind), input_range)
    return model


def import_float(context, path, source, kind, input_range="auto", max_output_difference=1e-5,
                 settings=None):
    """Writes WORKDIR/float from the loaded user model `source` (see the module docstring).

    Args:
      context: stage_runner.Context of the float stage (its image_size is the model's).
      path: the model file or folder (recorded with its sha256); kind: load_source's format.
      input_range: "auto" or a key of input_range.INPUT_RANGES.
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
                "augment": preset.augment, "augmentation": preset.augmentation,
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
