"""Pre-flight check: which layers of a model tfmot cannot quantize or prune: `tftool-check`.

Examples:
  python -m tftool check --model=mobilenet_v2 --image_size=96 --channels=3
  python -m tftool check --model=path/to/model.h5
  python -m tftool check --workdir=workdir --stage=float
Prints, for each purpose (--purpose=quantize,prune), every layer tfmot cannot handle and what
to do about it, and exits 1 when a layer would stop `tftool-quantize` / `tftool-prune`.

The verdicts come from tfmot's own registries and code paths, not from a list kept here:
  quantize  tfmot's quantize_apply is run on a copy of the model with the scheme's own layout
            transforms (Conv+BN folding, ...) and a registry that records every layer the
            scheme's QuantizeRegistry does not support instead of stopping at the first.
            tftool's additions (qat.OUTPUT_ONLY_LAYERS) are applied as tftool-quantize would.
  prune     every layer is tested as PruneLowMagnitude tests it: PruneRegistry.supports(), a
            PrunableLayer, or a get_prunable_weights method.
The library function `unsupported_layers` is what tftool-quantize (and the prune stage) call
before any training time is spent.
"""
import sys

from tftool import UserError, internals

PURPOSES = ("quantize", "prune")


def _finding(layer, reason, fix, blocking=True):
    return {"layer": layer.name, "class": type(layer).__name__, "reason": reason, "fix": fix,
            "blocking": blocking}


# What a command-line user can do about a finding: flags and commands, not code. The "fix" of
# a finding is for library users who build their own model.
CLI_FIXES = {
    ("quantize", True): "tftool-quantize cannot train it with QAT; ship the post-training int8 "
                        "variant instead (`tftool-export --variants=int8`, also part of `make "
                        "export`), or train another --model",
    ("prune", True): "tftool-prune cannot prune this model; ship the unpruned int8 variant "
                     "(`tftool-export --variants=int8`), or train another --model",
    ("prune", False): "nothing to do: tftool-prune wraps only the Conv2D, DepthwiseConv2D and "
                      "Dense layers it prunes and leaves this one as it is",
}


def cli_fix(finding, purpose):
    """What a tftool command-line user does about `finding` (CLI_FIXES; a non-blocking
    quantize finding has no CLI step)."""
    return CLI_FIXES.get((purpose, finding["blocking"]), "nothing to do")


def _has_weights(layer):
    return bool(layer.weights)


def _nested_and_lambda(model, purpose):
    """Findings tfmot raises (or warns) about before its registry is consulted."""
    import tf_keras as keras

    findings = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if purpose == "quantize":
                findings.append(_finding(
                    layer, "a model nested in the model: tfmot cannot quantize a model inside a "
                    "model", "build it flat: call the inner model's layers on your tensors (for "
                    "keras.applications pass input_tensor=), as models.mobilenet_v2 does"))
            elif not (isinstance(layer, keras.Sequential) or internals.is_graph_network(layer)):
                findings.append(_finding(layer, "a subclassed model nested in the model",
                                         "rebuild it as a functional or Sequential model"))
        elif purpose == "quantize" and isinstance(layer, keras.layers.Lambda):
            findings.append(_finding(
                layer, "a Lambda layer: tfmot would leave it unquantized, and its model clone "
                "refuses to deserialize a Python lambda (Keras safe mode)",
                "replace it with a custom layer (or a built-in one, e.g. Rescaling) and "
                "annotate it with quantize_annotate_layer(layer, quantize_config=...)"))
    return findings


def _quantize_findings(model, scheme):
    """Runs tfmot's quantize_apply with a recording registry; returns the findings."""
    import tensorflow_model_optimization as tfmot
    configs = internals.tfmot_quantize_configs()
    import tf_keras as keras

    from tftool.optimize import qat

    if not (isinstance(model, keras.Sequential) or internals.is_graph_network(model)):
        return [_finding(model, "a subclassed model: tfmot only quantizes functional and "
                         "Sequential models", "rebuild it with the functional API")]
    findings = _nested_and_lambda(model, "quantize")
    if any(f["blocking"] for f in findings):
        return findings  # quantize_annotate_model raises before any layer is looked at
    base = qat.get_scheme(scheme)
    registry = base.get_quantize_registry()
    missing = []

    class RecordingRegistry:
        """The scheme's registry, except that it records unsupported layers and lets them
        through with a no-op config, so one pass finds all of them."""

        def supports(self, layer):
            if not registry.supports(layer):
                missing.append(layer)
            return True

        def get_quantize_config(self, layer):
            if registry.supports(layer):
                return registry.get_quantize_config(layer)
            return configs.NoOpQuantizeConfig()

    class RecordingScheme(type(base)):
        def __init__(self):  # noqa: D107  (the base scheme object is already built)
            self.__dict__.update(base.__dict__)

        def get_layout_transformer(self):
            return base.get_layout_transformer()

        def get_quantize_registry(self):
            return RecordingRegistry()

    try:
        with tfmot.quantization.keras.quantize_scope():
            tfmot.quantization.keras.quantize_apply(qat.annotate(model), RecordingScheme())
    except Exception as e:  # tfmot's own failure while cloning: name the layers it trips on
        return findings + _apply_failure(model, e)
    seen = set()
    for layer in missing:
        if layer.name in seen:
            continue
        seen.add(layer.name)
        findings.append(_finding(layer, *_quantize_advice(layer)))
    return findings


def _apply_failure(model, error):
    """Findings when tfmot's quantize_apply itself raises (rather than refusing a layer).

    Measured (tfmot 0.8.1): keras.applications' MobileNetV3 builds hard-swish and hard-sigmoid
    from TF ops on Keras tensors (`x + 3.0`, `x * (1 / 6)`), which become TFOpLambda layers;
    quantize_apply raises AttributeError ("'list' object has no attribute 'dtype'") on them.
    Each TFOpLambda layer is named; without any, the error itself is the one finding.
    """
    ops = [layer for layer in model.layers if type(layer).__name__ == "TFOpLambda"]
    reason = f"tfmot's quantize_apply fails on it ({type(error).__name__}: " \
             f"{str(error).splitlines()[0][:120] if str(error) else ''})"
    fix = ("rebuild it from Keras layers (e.g. hard-swish as ReLU(max_value=6), Rescaling and "
           "Multiply; or mobilenet_v3 with minimalistic=True, which has no hard-swish)")
    if ops:
        return [_finding(layer, f"a TF op applied to Keras tensors (TFOpLambda "
                                f"{layer.name}): {reason}", fix) for layer in ops]
    return [_finding(model, reason, "report it with the model; try a simpler architecture")]


# Advice only: which supported layer usually stands in for an unsupported one. The verdicts
# themselves come from tfmot's registries.
REPLACEMENTS = {
    "PReLU": "ReLU or LeakyReLU", "ELU": "ReLU", "LayerNormalization":
    "BatchNormalization right after a Conv2D/Dense (folded)", "Conv1D": "Conv2D on [N, 1, W, C]",
    "SeparableConv1D": "SeparableConv2D", "LocallyConnected2D": "Conv2D",
}


def _quantize_advice(layer):
    name = type(layer).__name__
    if name in ("BatchNormalization", "SyncBatchNormalization"):
        return ("not in tfmot's 8-bit registry; tfmot only folds a BatchNormalization that "
                "directly follows a Conv2D, DepthwiseConv2D or Dense",
                "move it right after a convolution or dense layer, or remove it")
    if _has_weights(layer):
        instead = REPLACEMENTS.get(name, "a layer the registry supports")
        return (f"{name} is not in tfmot's 8-bit quantize registry",
                f"replace it with {instead}, or annotate it with quantize_annotate_layer(layer, "
                f"quantize_config=...) that says how to quantize its weights")
    return (f"{name} is not in tfmot's 8-bit quantize registry",
            "annotate it with quantize_annotate_layer(layer, tfmot's Default8BitOutputQuantize"
            "Config()) (tftool does this for qat.OUTPUT_ONLY_LAYERS), or move it out of the "
            "model into preprocessing")


def _prune_findings(model):
    prunable_layer, prune_registry = internals.tfmot_prune_registry()
    import tf_keras as keras

    if not (isinstance(model, keras.Sequential) or internals.is_graph_network(model)):
        return [_finding(model, "a subclassed model: tfmot only prunes functional and "
                         "Sequential models", "rebuild it with the functional API")]
    findings = _nested_and_lambda(model, "prune")

    def walk(m):
        for layer in m.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue  # clone_model never hands input layers to the wrapper
            if isinstance(layer, keras.Model) and (isinstance(layer, keras.Sequential)
                                                   or internals.is_graph_network(layer)):
                yield from walk(layer)  # prune_low_magnitude recurses into these
            else:
                yield layer

    for layer in walk(model):
        if (isinstance(layer, prunable_layer.PrunableLayer)
                or hasattr(layer, "get_prunable_weights")
                or prune_registry.PruneRegistry.supports(layer)):
            continue
        name = type(layer).__name__
        if _has_weights(layer):
            fix = ("leave it unwrapped (wrap only the other layers: keras.models.clone_model "
                   "with a clone_function that applies prune_low_magnitude to supported layers, "
                   "tfmot's 'prune some layers' recipe); its weights stay dense. Or replace it "
                   "with a supported layer, or implement PrunableLayer.get_prunable_weights")
        else:
            fix = ("it has no weights, so nothing is lost by leaving it unwrapped: wrap only "
                   "the supported layers (keras.models.clone_model with a clone_function, "
                   "tfmot's 'prune some layers' recipe) instead of prune_low_magnitude(model)")
        findings.append(_finding(layer, f"{name} is not in tfmot's PruneRegistry: "
                                 f"prune_low_magnitude(model) raises on it", fix,
                                 blocking=_has_weights(layer)))
    return findings


def unsupported_layers(model, purpose="quantize", scheme="default"):
    """The layers of `model` that tfmot cannot quantize or prune, with what to do about each.

    Args:
      model: a tf_keras model (functional or Sequential; a subclassed one is itself a finding).
      purpose: "quantize" (QAT with qat.apply) or "prune" (prune_low_magnitude).
      scheme: for "quantize", a qat.SCHEMES name ("default" or "prune_preserve").
    Returns:
      list of {"layer": name, "class": class name, "reason": str, "fix": str, "blocking": bool},
      in model order; empty when every layer is supported. "blocking" findings stop the
      stage (tfmot raises, or for pruning a layer's weights would silently stay dense);
      the others are warnings (a weightless layer that is not in the PruneRegistry: harmless
      when left unwrapped, though prune_low_magnitude(model) raises on it).
    Raises:
      ValueError: unknown purpose or scheme (lists the allowed ones).
    """
    kept_whole = [layer for layer in model.layers if type(layer).__name__ == "SavedModelLayer"]
    if kept_whole and purpose in PURPOSES:  # an imported subclassed model (graphless.py)
        return [_finding(layer, "a subclassed model imported whole as a SavedModel: tfmot "
                         "sees no layers inside it", "build the model with the functional API "
                         "or Sequential and import it again") for layer in kept_whole]
    if purpose == "quantize":
        return _quantize_findings(model, scheme)
    if purpose == "prune":
        return _prune_findings(model)
    raise ValueError(f"unknown purpose {purpose!r}; allowed: {', '.join(PURPOSES)}")


def describe(findings, purpose, audience="cli"):
    """Human-readable lines: a verdict, then one line per finding with what to do: the flag or
    command for audience "cli" (cli_fix), the code change for "library" (the finding's fix).
    Raises: ValueError: another audience."""
    if audience not in ("cli", "library"):
        raise ValueError(f"audience={audience!r}; allowed: cli, library")
    verb = {"quantize": "quantize", "prune": "prune"}[purpose]
    blocking = [f for f in findings if f["blocking"]]
    if not findings:
        lines = [f"{purpose}: OK, tfmot can {verb} every layer"]
    elif not blocking:
        lines = [f"{purpose}: OK with {len(findings)} warning(s)"]
    else:
        lines = [f"{purpose}: {len(blocking)} layer(s) tfmot cannot {verb}"]
    for f in findings:
        kind = "unsupported" if f["blocking"] else "warning"
        fix = cli_fix(f, purpose) if audience == "cli" else f["fix"]
        lines.append(f"  {kind}: {f['layer']} ({f['class']}): {f['reason']}. Fix: {fix}.")
    return lines


class Unsupported(UserError):
    """tfmot cannot quantize or prune a layer of the model (require_supported).

    Attributes: purpose ("quantize" or "prune"), what (the model's path or name), blocking
    (the blocking findings, in model order), fix (the `tftool-check` command that says what to
    do about each).
    """

    def __init__(self, message, purpose=None, what=None, blocking=(), fix=None):
        super().__init__(message)
        self.purpose, self.what, self.blocking, self.fix = purpose, what, list(blocking), fix

    def _first(self):
        """("tfmot cannot quantize layer 'mixer' (EinsumDense)", "2 more layers" or "")."""
        first, more = self.blocking[0], len(self.blocking) - 1
        return (f"tfmot cannot {self.purpose} layer {first['layer']!r} ({first['class']})",
                f"{more} more layer{'s' if more > 1 else ''}" if more else "")

    def short(self):
        """"tfmot cannot quantize layer 'mixer' (EinsumDense)" (+ " and 2 more layers")."""
        first, more = self._first()
        return first + (f" and {more}" if more else "")

    def summary(self):
        """short() with the model and the first layer's reason: "tfmot cannot quantize layer
        'mixer' (EinsumDense) of PATH: EinsumDense is not in tfmot's 8-bit quantize registry"
        (" (and 2 more layers)")."""
        first, more = self._first()
        return (f"{first} of {self.what}: {self.blocking[0]['reason']}"
                + (f" (and {more})" if more else ""))


def require_supported(model, purpose, what, scheme="default"):
    """Raises Unsupported, a UserError (one line), if `model` has a blocking finding for
    `purpose`.

    `what` names the model in the message (e.g. its path). Warnings are printed to stderr.
    """
    findings = unsupported_layers(model, purpose, scheme)
    for f in findings:
        if not f["blocking"]:
            print(f"warning: {what}: {f['layer']} ({f['class']}): {f['reason']}",
                  file=sys.stderr)
    blocking = [f for f in findings if f["blocking"]]
    if blocking:
        names = ", ".join(f"{f['layer']} ({f['class']})" for f in blocking)
        fix = f"`tftool-check --model={what} --purpose={purpose}` says what to do about each"
        raise Unsupported(f"tfmot cannot {purpose} {len(blocking)} layer(s) of {what}: {names}; "
                          f"{fix}", purpose, what, blocking, fix)
    return findings
