"""Model builders by name. All are functional Keras models (tfmot cannot wrap subclassed ones)
that take float32 [N, H, W, C] images in [0, 1] and return float32 [N, num_classes] logits.

Here: MODELS (the builders by name), `build`, and the user's own builders ("file.py:function"
or "package.module:function": builder, resolved, is_user_builder).

Modules, one job each; every public name is re-exported here, so `from tftool import models;
models.build(...)` is the way in:
  common.py        HEAD_LAYER, the input-size check the ImageNet-shaped builders share
  small_cnn.py     small_cnn, the default compact CNN
  mobilenet.py     mobilenet_v2, mobilenet_v3_small/large (keras.applications)
  resnet8.py       resnet8, the MLPerf Tiny reference model
  efficientnet.py  efficientnet_lite0
  airbench.py      airbench, its whitening initialization and logit-scale fold
  weights.py       the --weights path check and the HDF5 weights matcher by layer name
  macs.py          macs: multiply-accumulates of one inference
  user.py          user_module: importing the user's file.py or package.module
"""
from tftool import UserError

import tf_keras as keras

from tftool.models.airbench import (AIRBENCH_LOGIT_SCALE, LOGIT_SCALE_LAYER, WHITENING_IMAGES,
                                    WHITENING_LAYER, airbench, fold_logit_scale,
                                    init_whitening, whitening_kernel)
from tftool.models.common import HEAD_LAYER
from tftool.models.efficientnet import EFFICIENTNET_B0_BLOCKS, efficientnet_lite0
from tftool.models.macs import macs
from tftool.models.mobilenet import (IMAGENET_ALPHAS, MOBILENET_V3_IMAGENET_ALPHAS,
                                     mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small)
from tftool.models.resnet8 import RESNET8_L2, resnet8
from tftool.models.small_cnn import small_cnn
from tftool.models.user import user_module


MODELS = {
    "small_cnn": small_cnn,
    "mobilenet_v2": mobilenet_v2,
    "resnet8": resnet8,
    "mobilenet_v3_small": mobilenet_v3_small,
    "mobilenet_v3_large": mobilenet_v3_large,
    "efficientnet_lite0": efficientnet_lite0,
    "airbench": airbench,
}


def is_user_builder(name):
    """Whether `name` names a builder of the user's, "file.py:function" or
    "package.module:function", rather than one of MODELS."""
    return name not in MODELS and ":" in name


def builder(name):
    """The builder function of `name`: MODELS[name], or the user's "file.py:function" (a
    Python file, relative to the current folder or absolute) or "package.module:function" (an
    importable module). A user builder is called as fn(input_shape, num_classes, **kwargs)
    with the keyword arguments of `build` that its signature names (width, alpha, ...), and
    must return a tf_keras Model (build checks its input and output shapes).

    Raises:
      UserError: an unknown name, a missing file or module, an import that fails (its first
        line), a missing or non-callable function; each names the fix.
    """
    if name in MODELS:
        return MODELS[name]
    if ":" not in name:
        raise UserError(f"--model={name}: unknown model; use one of {', '.join(MODELS)}, or a "
                        f"builder of your own as file.py:function or package.module:function")
    where, function = name.rsplit(":", 1)
    fix = ("; it is called as function(input_shape, num_classes) and returns a tf_keras "
           "Model (import tf_keras as keras)")
    module = user_module(where, f"--model={name}", fix)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise UserError(f"--model={name}: {where} has no function {function!r}{fix}")
    return fn


def resolved(name, **kwargs):
    """`kwargs` with each None replaced by builder `name`'s own default (what a config records:
    `--width` unset is small_cnn's 32 and resnet8's 16). Keys the builder lacks are kept.
    Raises: UserError: unknown model name (builder)."""
    import inspect

    parameters = inspect.signature(builder(name)).parameters
    return {k: (parameters[k].default if v is None and k in parameters
                and parameters[k].default is not inspect.Parameter.empty else v)
            for k, v in kwargs.items()}


def build(name, input_shape, num_classes, **kwargs):
    """Builds model `name` (builder: one of MODELS or the user's file.py:function); keyword
    arguments a builder does not take are dropped.

    Args:
      input_shape: (height, width, channels); num_classes: logits out.
    Returns:
      a tf_keras Model, float32 [N, H, W, C] in [0, 1] -> [N, num_classes] logits.
    Raises:
      UserError: unknown model name (builder); a user builder that raises (its error in one
        line), returns something else than a tf_keras Model (a Keras 3 model, for one), or a
        model whose input is not [N, H, W, C] or whose output is not [N, num_classes].
    """
    import inspect

    fn = builder(name)
    accepted = inspect.signature(fn).parameters
    arguments = {k: v for k, v in kwargs.items() if k in accepted and v is not None}
    if name in MODELS:
        return fn(tuple(input_shape), num_classes, **arguments)
    try:
        model = fn(tuple(input_shape), num_classes, **arguments)
    except Exception as e:  # the user's code: its error in one line
        first = (str(e).splitlines() or [""])[0]
        raise UserError(f"--model={name} raised {type(e).__name__}: {first}") from e
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        raise UserError(f"--model={name} returned a {kind}, not a tf_keras Model: build it "
                        f"with `import tf_keras as keras` (tfmot needs Keras 2)")
    want_in, want_out = (None, *tuple(input_shape)), (None, num_classes)
    got_in, got_out = tuple(model.input_shape), tuple(model.output_shape)
    if len(got_in) != 4 or any(g not in (None, w) for g, w in zip(got_in[1:], want_in[1:])) \
            or got_out[1:] != want_out[1:]:
        raise UserError(f"--model={name}: the model takes {list(got_in)} and gives "
                        f"{list(got_out)}; it must take {list(want_in)} (pixels / 255) and give "
                        f"{list(want_out)} logits")
    return model
