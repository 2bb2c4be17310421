"""efficientnet_lite0: EfficientNet-Lite (Tan & Le 2019) written out as one flat graph."""
import math

from tftool import UserError, first_line

import tensorflow as tf
import tf_keras as keras

from tftool.models.common import HEAD_LAYER, _check_size
from tftool.models.weights import _check_weights_path, _load_named_weights


# EfficientNet-B0's MBConv stages (tensorflow/tpu models/official/efficientnet/lite/
# efficientnet_lite_builder.py, _DEFAULT_BLOCKS_ARGS, without the se0.25 that Lite drops):
# (kernel, repeats, input filters, output filters, expand ratio, stride).
EFFICIENTNET_B0_BLOCKS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
# efficientnet_model.py's conv_kernel_initializer: N(0, sqrt(2 / fan_out)), and
# dense_kernel_initializer: U(±1 / sqrt(num_classes)) = VarianceScaling(1/3, fan_out, uniform).
_EFFICIENTNET_CONV_INIT = {"class_name": "VarianceScaling", "config": {
    "scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}
_EFFICIENTNET_DENSE_INIT = {"class_name": "VarianceScaling", "config": {
    "scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


def _round_filters(filters, width_coefficient, divisor=8):
    """efficientnet_model.round_filters: filters × width, to a multiple of 8, ≥ 90%."""
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def efficientnet_lite0(input_shape, num_classes, width_coefficient=1.0, depth_coefficient=1.0,
                       dropout=0.2, weights=None, name="efficientnet_lite0"):
    """EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the Lite variants of
    tensorflow/tpu models/official/efficientnet/lite/, 2020), written out as one flat graph.

    Follows efficientnet_lite_builder.py (efficientnet_lite: relu_fn=relu6, use_se=False,
    fix_head_stem=True) and efficientnet_model.py (Model, MBConvBlock, round_filters,
    round_repeats): a 3x3 stride-2 stem conv with 32 filters, EfficientNet-B0's seven MBConv
    stages (EFFICIENTNET_B0_BLOCKS: 1x1 expand conv unless the ratio is 1, kxk depthwise conv
    with the stage's stride on its first block, 1x1 projection; batch norm after each conv,
    ReLU6 after all but the projection; a residual add when stride is 1 and input and output
    filters are equal), a 1x1 head conv with 1280 filters, global average pooling, dropout
    and the dense logits layer. Lite drops squeeze-and-excitation and uses ReLU6 instead of
    swish (quantization-friendly), and fix_head_stem keeps the stem (32) and head (1280)
    filters and the repeats of the first and last stage unscaled. At 224x224x3 and 1000
    classes: 4,652,008 parameters (the published ~4.65M).

    Differences from the reference, each on purpose:
      - No drop-connect (stochastic depth, survival probability 0.8 in the reference): it
        needs a custom layer, which tfmot cannot quantize; dropout before the logits stays.
      - Global average pooling (TFLite MEAN) instead of the reference's local_pooling
        avg_pool over the whole map: the same numbers.
      - BN momentum 0.9 (the reference: 0.99; epsilon 1e-3 as there), small_cnn's reason: the
        moving statistics follow the weights in short runs, and the stage runner
        re-estimates them after training (train/batchnorm.py).
      - Input float32 [N, H, W, C] in [0, 1], mapped inside to the reference's
        (pixel − 127) / 128 on 0..255 pixels (MEAN_RGB 127, STDDEV_RGB 128), i.e.
        x · 255/128 − 127/128, by a Rescaling layer.
    width_coefficient / depth_coefficient with the published resolutions and dropouts give
    the other Lite models (lite1: 1.0/1.1 at 240, lite2: 1.1/1.2 at 260, lite3: 1.2/1.4 at
    280, lite4: 1.4/1.8 at 300; dropout 0.3 from lite2 on).

    Args:
      input_shape: (height, width, channels), height and width ≥ 32 (224 is the published
        resolution; the spatial size is divided by 32).
      num_classes: number of logits.
      width_coefficient: multiplies the MBConv filters (rounded to multiples of 8).
      depth_coefficient: multiplies the repeats of stages 2-6 (rounded up).
      dropout: dropout rate before the logits layer (0 for none).
      weights: None (random init) or the path of a local Keras weights file of this
        architecture, e.g. efficientnet_lite0(...).save_weights("lite0.h5") with the same
        input channels and coefficients. HDF5 (.h5) files are matched by layer name and
        shape; one whose logits layer has another number of classes gives everything but
        the head (which stays freshly initialized). A TF checkpoint must fit the whole model.
    Returns:
      a functional tf_keras Model `name`: float32 [N, H, W, C] -> float32 [N, num_classes].
    Raises:
      UserError: input smaller than 32 px (names --image_size); a coefficient ≤ 0 or dropout
        outside [0, 1); a weights file that is missing or does not fit (other architecture,
        coefficients or channels; "imagenet": there are no Keras ImageNet weights of
        EfficientNet-Lite), named with the fix.
    """
    _check_size("efficientnet_lite0", input_shape)
    if width_coefficient <= 0 or depth_coefficient <= 0:
        raise UserError(f"efficientnet_lite0: width_coefficient={width_coefficient} and "
                        f"depth_coefficient={depth_coefficient} must be > 0 (1.0 = Lite0)")
    if not 0 <= dropout < 1:
        raise UserError(f"efficientnet_lite0: dropout={dropout} must be in [0, 1)")
    what = ("the path of a Keras weights file of efficientnet_lite0 with the same "
            "width_coefficient, depth_coefficient and channels, e.g. "
            "efficientnet_lite0(...).save_weights(PATH.h5)")
    if weights == "imagenet":
        raise UserError(f"--weights=imagenet: keras.applications has no EfficientNet-Lite; "
                        f"give {what}")
    _check_weights_path(weights, what)

    def conv_bn(x, filters, kernel, strides, prefix, activation=True, depthwise=False):
        if depthwise:
            x = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                             use_bias=False,
                                             depthwise_initializer=_EFFICIENTNET_CONV_INIT,
                                             name=prefix + "dwconv")(x)
            prefix += "dw"
        else:
            x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                    use_bias=False, kernel_initializer=_EFFICIENTNET_CONV_INIT,
                                    name=prefix + "conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=prefix + "bn")(x)
        return keras.layers.ReLU(6.0, name=prefix + "relu6")(x) if activation else x

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = conv_bn(x, 32, 3, 2, "stem_")  # fix_head_stem: not scaled
    last = len(EFFICIENTNET_B0_BLOCKS) - 1
    for stage, (kernel, repeats, filters_in, filters_out, expand, strides) in enumerate(
            EFFICIENTNET_B0_BLOCKS):
        filters_in = _round_filters(filters_in, width_coefficient)
        filters_out = _round_filters(filters_out, width_coefficient)
        if 0 < stage < last:  # fix_head_stem: the first and last stages keep their repeats
            repeats = int(math.ceil(depth_coefficient * repeats))
        for block in range(repeats):
            letter = chr(ord("a") + block) if block < 26 else str(block)
            prefix = f"block{stage + 1}{letter}_"
            if block:
                filters_in, strides = filters_out, 1
            y = x
            if expand != 1:
                y = conv_bn(y, filters_in * expand, 1, 1, prefix + "expand_")
            y = conv_bn(y, None, kernel, strides, prefix, depthwise=True)
            y = conv_bn(y, filters_out, 1, 1, prefix + "project_", activation=False)
            # MBConvBlock's test: the actual input channels (the stem's fixed 32 may
            # differ from the scaled filters_in)
            if strides == 1 and int(x.shape[-1]) == filters_out:
                y = keras.layers.Add(name=prefix + "add")([x, y])
            x = y
    x = conv_bn(x, 1280, 1, 1, "top_")  # fix_head_stem: not scaled
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    # float32 even under a mixed policy (small_cnn's comment).
    outputs = keras.layers.Dense(num_classes, dtype="float32",
                                 kernel_initializer=_EFFICIENTNET_DENSE_INIT,
                                 name=HEAD_LAYER)(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        try:
            _load_named_weights(model, weights)
        except (ValueError, OSError, tf.errors.OpError, AssertionError) as e:
            raise UserError(
                f"--weights={weights} does not fit efficientnet_lite0 with width_coefficient="
                f"{width_coefficient}, depth_coefficient={depth_coefficient} and "
                f"{input_shape[2]} channel(s) ({first_line(e, 160)}); give {what}") from e
    return model
