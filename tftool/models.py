"""Model builders by name. All are functional Keras models (tfmot cannot wrap subclassed ones)
that take float32 [N, H, W, C] images in [0, 1] and return float32 [N, num_classes] logits."""
import math
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError

import tensorflow as tf
import tf_keras as keras


def small_cnn(input_shape, num_classes, width=32, dropout=0.1, name="small_cnn"):
    """A compact CNN: stages of Conv-BN-ReLU blocks, max-pool between stages, global average
    pooling and a dense logits layer.

    Stage widths are width, 2·width, 4·width; there are as many stages as the input can halve
    while staying ≥ 2 pixels, at most 3 (8x8 input: 3 stages at 8, 4, 2 px; 28x28: 3 stages).
    Conv without bias followed by BN is the pattern tfmot folds for QAT. BN momentum is 0.9,
    not Keras's 0.99: with 0.99 the moving statistics still lag the weights after a short run
    (digits, 12 epochs × 22 steps: train accuracy 0.97, test 0.20; with 0.9: test 0.99).

    Args:
      input_shape: (height, width, channels).
      num_classes: number of logits.
      width: channels of the first stage.
    """
    if width < 1:
        raise ValueError(f"width={width}: must be ≥ 1")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    num_stages = max(1, min(3, int(math.log2(min(input_shape[:2]))) - 1))
    for stage in range(num_stages):
        filters = width * 2 ** stage
        for block in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"conv{stage}_{block}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{stage}_{block}")(x)
            x = keras.layers.ReLU(name=f"relu{stage}_{block}")(x)
        if stage < num_stages - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    # float32 even under a mixed policy: logits and the loss stay numerically stable
    # (https://www.tensorflow.org/guide/mixed_precision#building_the_model).
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# The classification head: everything else is the backbone that --freeze_backbone_epochs
# freezes (train/fit.py).
HEAD_LAYER = "logits"


def mobilenet_v2(input_shape, num_classes, alpha=1.0, weights=None, name="mobilenet_v2"):
    """MobileNetV2 (Sandler et al. 2018) from keras.applications with a fresh logits head.

    Input float32 [N, H, W, C] in [0, 1] (rescaled to [-1, 1] inside, as keras.applications
    expects); output float32 [N, num_classes] logits. The backbone's BatchNormalization
    momentum is keras.applications' 0.999; the stage runner re-estimates the moving
    statistics after training (train/batchnorm.py), so short runs are correct too.
    Args:
      input_shape: (height, width, channels), height and width ≥ 32.
      alpha: width multiplier (> 0; ImageNet weights exist for IMAGENET_ALPHAS).
      weights: None (random init), "imagenet" (downloads weights; needs 3 channels and alpha
        in IMAGENET_ALPHAS) or the path of a local Keras weights file of the backbone, e.g.
        keras.applications.MobileNetV2(weights=None, include_top=False, alpha=ALPHA,
        input_shape=(H, W, C)).save_weights("backbone.h5") (HDF5 or TF checkpoint).
    Raises:
      UserError: input smaller than 32 px; ImageNet weights on a non-RGB input or another
        alpha, or their download failed; a weights file that is missing or does not fit
        (other architecture, alpha or channels), named with the fix.
    """
    h, w, c = input_shape
    if min(h, w) < 32:
        raise UserError(f"--model=mobilenet_v2 needs images of at least 32x32, got {h}x{w}; "
                        f"pass --image_size=32 (or larger)")
    if alpha <= 0:
        raise UserError(f"--alpha={alpha}: the width multiplier must be > 0 (e.g. 0.35 to 1.4)")
    if weights == "imagenet":
        if c != 3:
            raise UserError("--weights=imagenet needs 3-channel input; pass --channels=3")
        if alpha not in IMAGENET_ALPHAS:
            raise UserError(f"--weights=imagenet exists for --alpha in "
                            f"{', '.join(map(str, IMAGENET_ALPHAS))}, not {alpha}")
    elif weights is not None and not (os.path.isfile(weights) or os.path.isfile(
            weights + ".index")):
        raise UserError(f"--weights={weights}: no such weights file; give imagenet or the path "
                        f"of a Keras weights file of a MobileNetV2 backbone")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    # keras.applications expects [-1, 1]; the tftool pipeline gives [0, 1].
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    # input_tensor= keeps one flat graph: tfmot cannot quantize a model nested in a model.
    try:
        base = keras.applications.MobileNetV2(
            input_tensor=x, alpha=alpha, include_top=False, pooling="avg",
            weights="imagenet" if weights == "imagenet" else None)
    except Exception as e:  # keras.utils.get_file raises a bare Exception on URL failures
        if weights != "imagenet" or "fetch failure" not in str(e).lower():
            raise
        raise UserError(f"--weights=imagenet: the download failed ({str(e)[:160]}); offline, "
                        f"save the backbone's weights on a connected machine and pass "
                        f"--weights=PATH") from e
    if weights not in (None, "imagenet"):
        try:
            base.load_weights(weights)
        except (ValueError, OSError, tf.errors.OpError) as e:
            text = (getattr(e, "message", None) or str(e)).strip().splitlines()
            raise UserError(
                f"--weights={weights} does not fit mobilenet_v2 --alpha={alpha} with {c} "
                f"channel(s) ({text[0][:160] if text else type(e).__name__}); give the "
                f"weights of keras.applications.MobileNetV2(include_top=False) saved with the "
                f"same alpha and channels") from e
    outputs = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(base.output)
    return keras.Model(inputs, outputs, name=name)


MODELS = {
    "small_cnn": small_cnn,
    "mobilenet_v2": mobilenet_v2,
}


def build(name, input_shape, num_classes, **kwargs):
    """Builds model `name` from MODELS; keyword arguments a builder does not take are dropped.

    Raises:
      UserError: unknown model name.
    """
    import inspect

    if name not in MODELS:
        raise UserError(f"--model={name}: unknown model; use one of {', '.join(MODELS)}")
    fn = MODELS[name]
    accepted = inspect.signature(fn).parameters
    return fn(tuple(input_shape), num_classes,
              **{k: v for k, v in kwargs.items() if k in accepted and v is not None})
