"""The MobileNets of keras.applications (mobilenet_v2, mobilenet_v3_small/large), each as one
flat functional graph with a fresh logits head."""
from tftool import UserError, first_line

import tensorflow as tf
import tf_keras as keras

from tftool.models.common import HEAD_LAYER, _check_size
from tftool.models.weights import _check_weights_path

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


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
    c = input_shape[2]
    _check_size("mobilenet_v2", input_shape)
    if alpha <= 0:
        raise UserError(f"--alpha={alpha}: the width multiplier must be > 0 (e.g. 0.35 to 1.4)")
    if weights == "imagenet":
        if c != 3:
            raise UserError("--weights=imagenet needs 3-channel input; pass --channels=3")
        if alpha not in IMAGENET_ALPHAS:
            raise UserError(f"--weights=imagenet exists for --alpha in "
                            f"{', '.join(map(str, IMAGENET_ALPHAS))}, not {alpha}")
    _check_weights_path(weights, "imagenet or the path of a Keras weights file of a MobileNetV2 "
                                 "backbone")
    return _applications_mobilenet(
        keras.applications.MobileNetV2, input_shape, num_classes, weights, name,
        f"mobilenet_v2 --alpha={alpha}", "keras.applications.MobileNetV2(include_top=False)",
        alpha=alpha)


def _applications_mobilenet(application, input_shape, num_classes, weights, name, fits,
                            backbone, **options):
    """What mobilenet_v2 and _mobilenet_v3 build once their arguments are checked: the
    keras.applications `application` (MobileNetV2, MobileNetV3Small or MobileNetV3Large) on
    float32 [N, H, W, C] in [0, 1], flat, with a fresh float32 [N, num_classes] logits head.

    Args:
      weights: None (random init), "imagenet" (downloaded) or the path of an existing weights
        file of the backbone.
      fits: the model and options a weights file must fit, for the error
        ("mobilenet_v2 --alpha=1.0").
      backbone: the keras.applications call whose weights do fit, for the error.
      options: `application`'s other keyword arguments (alpha, minimalistic, ...).
    Raises:
      UserError: the ImageNet download failed; the weights file does not fit (`fits`), named
        with the fix.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    # keras.applications expects [-1, 1]; the tftool pipeline gives [0, 1]. (MobileNetV3 gets
    # there by its own Rescaling(1/127.5, -1) of 0..255 pixels, include_preprocessing=True;
    # _mobilenet_v3 leaves that out, and this one maps [0, 1] to the same [-1, 1].)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    # input_tensor= keeps one flat graph: tfmot cannot quantize a model nested in a model.
    try:
        base = application(input_tensor=x, include_top=False, pooling="avg",
                           weights="imagenet" if weights == "imagenet" else None, **options)
    except Exception as e:  # keras.utils.get_file raises a bare Exception on URL failures
        if weights != "imagenet" or "fetch failure" not in str(e).lower():
            raise
        raise UserError(f"--weights=imagenet: the download failed ({str(e)[:160]}); offline, "
                        f"save the backbone's weights on a connected machine and pass "
                        f"--weights=PATH") from e
    if weights not in (None, "imagenet"):
        try:
            base.load_weights(weights)
        except (ValueError, OSError, tf.errors.OpError, AssertionError) as e:
            # AssertionError: a TF checkpoint of another model (Keras's assert_consumed)
            raise UserError(
                f"--weights={weights} does not fit {fits} with {input_shape[2]} channel(s) "
                f"({first_line(e, 160)}); give the weights of {backbone} saved with the same "
                f"alpha and channels") from e
    outputs = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(base.output)
    return keras.Model(inputs, outputs, name=name)


# ImageNet weights of keras.applications' MobileNetV3 exist for these alphas (minimalistic: 1.0).
MOBILENET_V3_IMAGENET_ALPHAS = (0.75, 1.0)


def _mobilenet_v3(application, model, input_shape, num_classes, alpha, minimalistic, weights,
                  name):
    """MobileNetV3Small/Large from keras.applications, flat, with a fresh logits head."""
    c = input_shape[2]
    _check_size(model, input_shape)
    if alpha <= 0:
        raise UserError(f"--alpha={alpha}: the width multiplier must be > 0 (e.g. 0.75 or 1.0)")
    backbone = (f"keras.applications.{application.__name__}(include_top=False, "
                f"minimalistic={minimalistic})")
    if weights == "imagenet":
        if c != 3:
            raise UserError("--weights=imagenet needs 3-channel input; pass --channels=3")
        alphas = (1.0,) if minimalistic else MOBILENET_V3_IMAGENET_ALPHAS
        if alpha not in alphas:
            raise UserError(f"--weights=imagenet exists for {model} (minimalistic="
                            f"{minimalistic}) with --alpha in {', '.join(map(str, alphas))}, "
                            f"not {alpha}")
    _check_weights_path(weights, f"imagenet or the path of a Keras weights file of {backbone}")
    return _applications_mobilenet(
        application, input_shape, num_classes, weights, name,
        f"{model} --alpha={alpha} minimalistic={minimalistic}", backbone, alpha=alpha,
        minimalistic=minimalistic, include_preprocessing=False)


_MOBILENET_V3_DOC = """MobileNetV3-{size} (Howard et al. 2019, "Searching for MobileNetV3") from
    keras.applications.MobileNetV3{size} with a fresh logits head.

    Input float32 [N, H, W, C] in [0, 1], rescaled to [-1, 1] inside (the range of
    keras.applications' include_preprocessing=True on 0..255 pixels, which is left out);
    output float32 [N, num_classes] logits from global average pooling of the last 1x1 conv
    ({channels} channels at alpha 1.0) and a dense layer: the keras.applications top (a 1x1
    conv to {top} channels, dropout) is replaced. One flat functional graph. The backbone's
    BatchNormalization momentum is keras.applications' 0.999; the stage runner re-estimates
    the moving statistics after training (train/batchnorm.py). Hard-swish and the
    hard-sigmoid of squeeze-and-excite are built by keras.applications from TF ops on Keras
    tensors (TFOpLambda layers): tfmot's QAT cannot wrap them (qat.apply raises), and TFLite
    has no 16x8 HARD_SWISH kernel (int16x8 export fails); post-training int8 works.
    minimalistic=True has neither and takes QAT and every export mode (measured, TF 2.21).

    Args:
      input_shape: (height, width, channels), height and width ≥ 32.
      num_classes: number of logits.
      alpha: width multiplier (> 0; ImageNet weights exist for 0.75 and 1.0, minimalistic
        for 1.0 only).
      minimalistic: the variant without hard-swish, squeeze-and-excite and 5x5 kernels
        (ReLU, 3x3), the paper's mobile-CPU-friendly "minimalistic" models.
      weights: None (random init), "imagenet" (downloads weights; needs 3 channels) or the
        path of a local Keras weights file of the backbone, e.g.
        keras.applications.MobileNetV3{size}(weights=None, include_top=False, alpha=ALPHA,
        minimalistic=M, input_shape=(H, W, C)).save_weights("backbone.h5") (HDF5
        recommended; a TF checkpoint also loads).
    Returns:
      a functional tf_keras Model `name`: float32 [N, H, W, C] -> float32 [N, num_classes].
    Raises:
      UserError: input smaller than 32 px (names --image_size); alpha ≤ 0; ImageNet weights
        on a non-RGB input or another alpha, or their download failed; a weights file that
        is missing or does not fit (other architecture, alpha, minimalistic or channels),
        named with the fix.
    """


def mobilenet_v3_small(input_shape, num_classes, alpha=1.0, minimalistic=False, weights=None,
                       name="mobilenet_v3_small"):
    return _mobilenet_v3(keras.applications.MobileNetV3Small, "mobilenet_v3_small",
                         input_shape, num_classes, alpha, minimalistic, weights, name)


def mobilenet_v3_large(input_shape, num_classes, alpha=1.0, minimalistic=False, weights=None,
                       name="mobilenet_v3_large"):
    return _mobilenet_v3(keras.applications.MobileNetV3Large, "mobilenet_v3_large",
                         input_shape, num_classes, alpha, minimalistic, weights, name)


mobilenet_v3_small.__doc__ = _MOBILENET_V3_DOC.format(size="Small", channels=576, top=1024)
mobilenet_v3_large.__doc__ = _MOBILENET_V3_DOC.format(size="Large", channels=960, top=1280)
