"""Any Keras classifier (Keras 3 or tf_keras; functional, Sequential, nested) rebuilt as one flat
tf_keras functional model with the same weights, so tensorflow-model-optimization can take it.

Why: tfmot 0.8.1 works on tf_keras (Keras 2) models only (tensorflow/model-optimization#1119)
and refuses nested models (#957, #638); TensorFlow 2.16+ saves Keras 3 `.keras` files by
default, and `keras.applications` users nest a backbone inside their model.

How: the model's own serialized graph (`get_config()`: layers in order, each with the nodes
that call it) is walked once. Every layer becomes the tf_keras layer of the same class, built
from its config (Keras 3's serialization details mapped to tf_keras's: dtype policies,
`batch_shape`, initializers, which the copied weights make moot), called on the tensors its
node names, and given the source layer's weights (`get_weights()`, same order in both Kerases
for the layers tfmot handles). A nested model's layers are walked in place of the model
(flattening is exact: a functional model called on a tensor computes its layers on it). Random
augmentation layers (RandomFlip, ...) are identity at inference and are left out. Nothing here
trusts the result: `tftool.importer` compares the two models' outputs on real images.
Source: the Keras functional API's serialization (keras.io/guides/serialization_and_saving).
"""
import inspect

from tftool import UserError, first_line

NESTED = ("Functional", "Model", "Sequential")
# Identity at inference (Keras docs: "only active during training"); dropped from the graph.
AUGMENTATION = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                "RandomContrast", "RandomBrightness", "GaussianNoise", "GaussianDropout",
                "AlphaDropout")
# Keyword arguments every tf_keras layer's base class takes.
_BASE_KWARGS = ("name", "trainable", "dtype", "dynamic", "input_dim", "input_shape",
                "batch_input_shape", "batch_size", "activity_regularizer", "autocast")


class Unconvertible(UserError):
    """A layer with no exact tf_keras counterpart (the message names it)."""


class Subclassed(Unconvertible):
    """A subclassed model: no layer graph to rebuild (tftool.graphless keeps it whole)."""


def is_keras3(model):
    """Whether `model` is a Keras 3 model (the `keras` package), not tf_keras."""
    return type(model).__module__.split(".")[0] == "keras"


def _ref(value):
    """(layer, node, tensor) of a serialized tensor reference, or None."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, tensor = value["config"]["keras_history"]
        return (name, int(node), int(tensor))
    return None


def _resolve(value, lookup):
    """A Keras 3 call argument with every tensor reference replaced by lookup(ref)."""
    ref = _ref(value)
    if ref is not None:
        return lookup(ref)
    if isinstance(value, (list, tuple)):
        return [_resolve(v, lookup) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _resolve(v, lookup) for k, v in value.items()}
    return value


def _refs(value):
    """Every tensor reference inside a Keras 3 call argument."""
    ref = _ref(value)
    if ref is not None:
        return [ref]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict) and "class_name" not in value:
        return [r for v in value.values() for r in _refs(v)]
    return []


def _nodes(layer_config, keras3):
    """The calls of one serialized layer as [(args, kwargs, refs)]: args/kwargs still hold the
    tensor references (Keras 3: serialized dicts; tf_keras: (layer, node, tensor) tuples),
    resolved when the call is made; refs lists them all (what the call waits for)."""
    calls = []
    for node in layer_config.get("inbound_nodes", []):
        if keras3:
            args, kwargs = node.get("args", []), dict(node.get("kwargs", {}))
            calls.append((args, kwargs, _refs(args) + _refs(kwargs)))
        else:  # tf_keras: [[layer, node, tensor, kwargs], ...]
            refs = [(e[0], int(e[1]), int(e[2])) for e in node]
            kwargs = dict(node[0][3]) if node and len(node[0]) > 3 else {}
            args = [refs[0]] if len(refs) == 1 else [refs]
            calls.append((args, kwargs, refs))
    return calls


def _endpoints(value):
    """[(layer, node, tensor)] of a config's input_layers / output_layers."""
    if value and isinstance(value[0], str):
        value = [value]
    return [(v[0], int(v[1]), int(v[2])) for v in value]


def _strip_serialization(value):
    """A Keras 3 serialized object as tf_keras reads it: no "module" / "registered_name"."""
    if isinstance(value, dict):
        return {k: _strip_serialization(v) for k, v in value.items()
                if k not in ("module", "registered_name")}
    if isinstance(value, list):
        return [_strip_serialization(v) for v in value]
    return value


def _layer_config(class_name, config, keras3, layer_name):
    """Keras 3 layer config -> tf_keras kwargs for the class of the same name.
    Raises: Unconvertible: a setting tf_keras's layer lacks that is not at its neutral value."""
    import tf_keras as keras

    cls = getattr(keras.layers, class_name, None)
    if cls is None:
        raise Unconvertible(f"layer {layer_name!r} ({class_name}) has no tf_keras counterpart")
    if not keras3:
        return cls, dict(config)
    out = {}
    accepted = set(_BASE_KWARGS)
    for base in cls.__mro__:  # **kwargs passed on to a base class (BatchNormalizationBase)
        if "__init__" in vars(base):
            accepted |= set(inspect.signature(base.__init__).parameters)
    for key, value in config.items():
        if key == "dtype":
            value = "float32"  # computed in float32 here; the output check says what moved
        elif key == "batch_shape":
            key = "batch_input_shape"
        elif key.endswith("_initializer"):
            continue  # the weights are copied over
        else:
            value = _strip_serialization(value)
        if key not in accepted:
            if value in (None, False, 0, "", [], {}) or key in ("optional", "build_config"):
                continue
            raise Unconvertible(f"layer {layer_name!r} ({class_name}) sets {key}={value!r}, "
                                f"which tf_keras's {class_name} does not have")
        out[key] = value
    return cls, out


def _sequential_as_functional(config):
    """A Sequential config as a functional one (input layer first, each layer calling the
    previous), in the tf_keras node format."""
    layers = [dict(layer) for layer in config["layers"]]
    if not layers or layers[0]["class_name"] != "InputLayer":
        shape = config.get("build_input_shape")
        if shape is None:
            raise Unconvertible(f"Sequential model {config.get('name')!r} was never built: it "
                                f"has no input shape; build or call it once before saving")
        layers.insert(0, {"class_name": "InputLayer",
                          "config": {"batch_input_shape": list(shape),
                                     "name": f"{config.get('name', 'sequential')}_input"}})
    previous = None
    for layer in layers:
        layer["name"] = layer.get("name") or layer["config"]["name"]
        layer["inbound_nodes"] = [] if previous is None else [[[previous, 0, 0, {}]]]
        previous = layer["name"]
    return {"name": config.get("name"), "layers": layers,
            "input_layers": [[layers[0]["name"], 0, 0]], "output_layers": [[previous, 0, 0]]}


class _Builder:
    """Walks serialized graphs and calls tf_keras layers; see the module docstring."""

    def __init__(self, keras3):
        self.keras3 = keras3
        self.copies = []  # (tf_keras layer, source layer): weights to copy once built
        self.names = set()
        self.dropped = []  # augmentation layers left out

    def unique(self, name):
        base, i = name, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def graph(self, source, config, inputs):
        """Calls the layers of functional `config` (the source model object `source`) on
        `inputs` (tf_keras tensors, one per input layer); returns the output tensors."""
        if "inbound_nodes" not in (config["layers"][0] if config["layers"] else {}) or \
                "input_layers" not in config:
            config = _sequential_as_functional(config)
            keras3 = False  # the node format written above (layer configs stay the source's)
        else:
            keras3 = self.keras3
        tensors = {}
        for ref, tensor in zip(_endpoints(config["input_layers"]), inputs):
            tensors[ref] = tensor
        pending = [(layer, k, call) for layer in config["layers"]
                   for k, call in enumerate(_nodes(layer, keras3))]
        made = {}
        while pending:
            ready = [p for p in pending if all(r in tensors for r in p[2][2])]
            if not ready:
                missing = sorted({r[0] for p in pending for r in p[2][2] if r not in tensors})
                raise Unconvertible(f"model {config.get('name')!r}: layers {missing[:3]} are "
                                    f"never computed from the model's inputs")
            for item in ready:
                pending.remove(item)
                layer, k, (args, kwargs, _) = item
                outputs = self.call(source, layer, keras3, args, kwargs, tensors, made)
                outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
                name = layer.get("name") or layer["config"]["name"]
                for j, tensor in enumerate(outputs):
                    tensors[(name, k, j)] = tensor
        return [tensors[ref] for ref in _endpoints(config["output_layers"])]

    def call(self, source, layer, keras3, args, kwargs, tensors, made):
        class_name, name = layer["class_name"], layer.get("name") or layer["config"]["name"]
        if keras3:  # the Keras 3 node format
            args = _resolve(args, lambda r: tensors[r])
            kwargs = _resolve(kwargs, lambda r: tensors[r])
        else:
            args = [[tensors[r] for r in a] if isinstance(a, list) else tensors[a] for a in args]
        kwargs = {k: v for k, v in kwargs.items() if k not in ("mask", "training")
                  or v not in (None, False)}
        if class_name in NESTED:
            return self.graph(source.get_layer(name), layer["config"], _flatten(args))
        if class_name in AUGMENTATION:
            self.dropped.append(name)
            return args[0]
        if class_name == "InputLayer":
            raise Unconvertible(f"input layer {name!r} is called on a tensor")
        if str(layer.get("module", "")).startswith("keras.src.ops"):
            return self.operation(class_name, name, args, kwargs)
        if name not in made:
            cls, config = _layer_config(class_name, layer["config"], self.keras3, name)
            config["name"] = self.unique(name)
            try:
                made[name] = cls.from_config(config)
            except (TypeError, ValueError) as e:
                raise Unconvertible(f"layer {name!r} ({class_name}) cannot be rebuilt in "
                                    f"tf_keras: {first_line(e)}") from e
            self.copies.append((made[name], source.get_layer(name)))
        return made[name](*args, **kwargs)

    def operation(self, class_name, name, args, kwargs):
        """A Keras 3 operation written with Python operators (`x + y`, `x * 2.0`): the
        tf_keras layer that computes the same (Add/Subtract/Multiply of two tensors, a
        Rescaling for a number). Raises: Unconvertible: any other operation."""
        import tf_keras as keras

        tensors = [a for a in args if not isinstance(a, (int, float))]
        numbers = [float(a) for a in args if isinstance(a, (int, float))]
        merge = {"Add": keras.layers.Add, "Subtract": keras.layers.Subtract,
                 "Multiply": keras.layers.Multiply}
        if not kwargs and len(args) == 2 and class_name in merge:
            if len(tensors) == 2:
                return merge[class_name](name=self.unique(name))(tensors)
            if len(tensors) == 1 and class_name == "Multiply":
                return keras.layers.Rescaling(numbers[0], name=self.unique(name))(tensors[0])
            if len(tensors) == 1 and (class_name == "Add" or args[0] is tensors[0]):
                offset = numbers[0] if class_name == "Add" else -numbers[0]
                return keras.layers.Rescaling(1.0, offset=offset,
                                              name=self.unique(name))(tensors[0])
        raise Unconvertible(f"operation {name!r} ({class_name}, written with keras.ops or a "
                            f"Python operator) has no tf_keras layer here; write it as a "
                            f"keras.layers layer (Add, Multiply, Rescaling, ...)")


def _flatten(value):
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return [value]


def graph_config(source):
    """The serialized layer graph of a functional or Sequential model (get_config()).
    Raises: Subclassed: a subclassed model (its config names no layers, or it has none)."""
    try:
        config = source.get_config()
    except NotImplementedError:
        config = None
    if not isinstance(config, dict) or "layers" not in config:
        raise Subclassed(f"model {source.name!r} ({type(source).__name__}) is subclassed: "
                         f"it has no layer graph to rebuild; build it with the functional API "
                         f"or Sequential")
    return config


def flat_model(source, input_shape=None):
    """`source` rebuilt as one flat tf_keras functional model with its weights.

    Args:
      source: a built Keras 3 or tf_keras model: functional or Sequential, possibly with
        nested functional/Sequential models (flattened), one image input, one output.
      input_shape: (H, W, C) for an input whose height/width the source leaves open (None).
    Returns:
      (tf_keras.Model float32 [N, H, W, C] -> the source's output, [names of the augmentation
      layers left out]).
    Raises:
      Subclassed: a subclassed model (no graph to walk).
      Unconvertible: a layer class tf_keras lacks or
        whose settings it cannot express, several inputs or outputs, weights that do not fit.
    """
    import tf_keras as keras

    keras3 = is_keras3(source)
    config = graph_config(source)
    declared = getattr(source, "inputs", None) or []
    returned = getattr(source, "outputs", None) or []
    shape = tuple(declared[0].shape[1:]) if declared else None
    if len(declared) > 1 or len(returned) > 1:
        raise Unconvertible(f"model {source.name!r} has {len(declared)} inputs and "
                            f"{len(returned)} outputs; an image classifier has one each")
    if shape is None or any(d is None for d in shape):
        if input_shape is None:
            raise Unconvertible(f"model {source.name!r} leaves its input size open; give "
                                f"--image_size")
        shape = tuple(input_shape) if shape is None else tuple(
            given if d is None else d for d, given in zip(shape, input_shape))
    if (not keras3 and "input_layers" in config and declared
            and tuple(declared[0].shape[1:]) == shape
            and not any(layer["class_name"] in NESTED + AUGMENTATION
                        for layer in config["layers"])):
        # already flat tf_keras: its own config round trip keeps every layer tf_keras has
        # (TFOpLambda, keyword tensors) exactly
        model = keras.Model.from_config(config)
        model.set_weights(source.get_weights())
        return model, []
    builder = _Builder(keras3)
    inputs = keras.Input(shape=shape, name=builder.unique("image"))
    try:
        outputs = builder.graph(source, config, [inputs])
    except Unconvertible:
        raise
    except Exception as e:  # noqa: BLE001  (a graph this walker does not know: one line)
        raise Unconvertible(f"model {source.name!r} cannot be rebuilt layer by layer in "
                            f"tf_keras ({type(e).__name__}: {first_line(e)})") from e
    model = keras.Model(inputs, outputs[0], name=builder.unique(
        "".join(c if c.isalnum() or c in "_-" else "_" for c in source.name)))
    for layer, original in builder.copies:
        weights = original.get_weights()
        if len(weights) != len(layer.weights):
            raise Unconvertible(f"layer {original.name!r} ({type(original).__name__}) has "
                                f"{len(weights)} weights in the source and {len(layer.weights)} "
                                f"in tf_keras")
        try:
            layer.set_weights(weights)
        except ValueError as e:
            raise Unconvertible(f"layer {original.name!r}: its weights do not fit the tf_keras "
                                f"layer ({first_line(e)})") from e
    return model, builder.dropped
