"""Loading a local weights file into a built model: the path check of the builders' --weights
and the HDF5 matcher by layer name and shape (efficientnet_lite0's weights)."""
import os

from tftool import UserError

import tf_keras as keras

from tftool.models.common import HEAD_LAYER


def _check_weights_path(weights, what):
    """Raises UserError when `weights` (--weights: None, "imagenet" or a path) names a file
    that does not exist, neither PATH nor a TF checkpoint's PATH.index; `what` names the fix."""
    if weights is not None and weights != "imagenet" and not (
            os.path.isfile(weights) or os.path.isfile(weights + ".index")):
        raise UserError(f"--weights={weights}: no such weights file; give {what}")


def _hdf5_layer_shapes(path):
    """{layer name: [weight shapes]} of the layers with weights in a Keras HDF5 weights file
    (save_weights, or the model_weights group of model.save). Layer and weight name lists
    over 64 KB are split into numbered attributes (name0, name1, ...), as Keras writes them."""
    import h5py

    def names(group, key):
        if key in group.attrs:
            values = list(group.attrs[key])
        else:
            values, chunk = [], 0
            while f"{key}{chunk}" in group.attrs:
                values.extend(group.attrs[f"{key}{chunk}"])
                chunk += 1
        return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f \
            else f
        shapes = {}
        for layer in names(group, "layer_names"):
            weights = names(group[layer], "weight_names")
            if weights:
                shapes[layer] = [tuple(group[layer][w].shape) for w in weights]
    return shapes


def _load_named_weights(model, path):
    """Loads a weights file of `model`'s architecture into it; HDF5 by layer name, every
    layer with weights required, the logits layer only when its shape fits (else it stays
    fresh: a file trained on another number of classes).

    Raises:
      ValueError: a layer missing from the file, an extra one, or another weight shape.
      OSError / tf.errors.OpError / AssertionError: an unreadable file or a TF checkpoint
        that does not fit.
    """
    import h5py

    if not (os.path.isfile(path) and h5py.is_hdf5(path)):
        # A TF checkpoint: the whole model, every variable matched.
        status = model.load_weights(path)
        try:
            status.assert_existing_objects_matched()
        finally:
            status.expect_partial()  # no "could not be found" warnings at exit on a failure
        return
    saved = _hdf5_layer_shapes(path)
    expected = {layer.name: [tuple(w.shape) for w in layer.weights]
                for layer in model.layers if layer.weights}
    missing = [n for n in expected if n not in saved]
    extra = [n for n in saved if n not in expected]
    if missing or extra:
        raise ValueError(f"layers missing from the file: {', '.join(missing[:3]) or 'none'}; "
                         f"layers the model lacks: {', '.join(extra[:3]) or 'none'}")
    wrong = [n for n in expected if saved[n] != expected[n] and n != HEAD_LAYER]
    if wrong:
        raise ValueError(f"layer {wrong[0]} has weights of shapes {saved[wrong[0]]} in the "
                         f"file, {expected[wrong[0]]} in the model")
    if saved[HEAD_LAYER] == expected[HEAD_LAYER]:
        model.load_weights(path, by_name=True)
    else:  # another number of classes: everything but the head
        keras.Model(model.inputs, model.get_layer(HEAD_LAYER).input).load_weights(
            path, by_name=True)
