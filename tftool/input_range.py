"""An imported model's input range and output (importer.py steps 3-4): which pixel scaling
(0-1, -1-1 or 0-255) the flat model expects, chosen by its accuracy on validation images fed
in each (choose_range; within noise, its leading Rescaling decides: implied_range), and the
model rewritten to the float stage's contract (to_contract): [0, 1] in, the range map folded
into its leading Rescaling or first kernel (else a RANGE_LAYER in front), a final softmax
removed.
"""
import numpy as np

from tftool import UserError

# --input_range -> (scale, offset) mapping [0, 1] pixels to the range the model expects
INPUT_RANGES = {"0_1": (1.0, 0.0), "-1_1": (2.0, -1.0), "0_255": (255.0, 0.0)}
RANGE_TEXT = {"0_1": "0-1", "-1_1": "-1-1", "0_255": "0-255"}
RANGE_LAYER = "tftool_input_range"


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
