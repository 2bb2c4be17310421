"""Model builders by name. All are functional Keras models (tfmot cannot wrap subclassed ones)
that take float32 [N, H, W, C] images in [0, 1] and return float32 [N, num_classes] logits."""
import math
import os

from tftool import UserError, first_line

import tensorflow as tf
import tf_keras as keras


def small_cnn(input_shape, num_classes, width=32, dropout=0.1, stages=None, name="small_cnn"):
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
      stages: number of stages, 1..3 (None: as many as the input allows, at most 3); more than
        the input allows is clipped to that (tftool-search varies it).
    Raises: ValueError: width < 1 or stages outside 1..3.
    """
    if width < 1:
        raise ValueError(f"width={width}: must be ≥ 1")
    if stages is not None and not 1 <= stages <= 3:
        raise ValueError(f"stages={stages}: must be 1, 2 or 3")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    num_stages = max(1, min(3, int(math.log2(min(input_shape[:2]))) - 1))
    if stages is not None:
        num_stages = min(stages, num_stages)
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
        # AssertionError: Keras's check that a TF checkpoint of another model matched nothing
        except (ValueError, OSError, AssertionError, tf.errors.OpError) as e:
            text = (getattr(e, "message", None) or str(e)).strip().splitlines()
            raise UserError(
                f"--weights={weights} does not fit mobilenet_v2 --alpha={alpha} with {c} "
                f"channel(s) ({text[0][:160] if text else type(e).__name__}); give the "
                f"weights of keras.applications.MobileNetV2(include_top=False) saved with the "
                f"same alpha and channels") from e
    outputs = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(base.output)
    return keras.Model(inputs, outputs, name=name)


# L2 weight decay of the MLPerf Tiny ResNet-8's convolutions (keras_model.py's l2(1e-4)).
RESNET8_L2 = 1e-4


def resnet8(input_shape, num_classes, width=16, name="resnet8"):
    """ResNet-8: the MLPerf Tiny image-classification reference model (CIFAR-10).

    Follows mlcommons/tiny benchmark/training/image_classification/keras_model.py,
    `resnet_v1_eembc` (EEMBC's CIFAR10_ResNetv1; He et al. 2016, "Deep Residual Learning"):
    a 3x3 conv-BN-ReLU stem with `width` filters, then three residual stacks with width,
    2·width and 4·width filters and strides 1, 2, 2, each conv3x3-BN-ReLU-conv3x3-BN plus a
    shortcut (identity in the first stack, a 1x1 conv with the stack's stride in the others,
    as in the reference), add, ReLU; then global average pooling and a dense logits layer.
    Like the reference: convolutions with bias, he_normal initialization and L2 weight decay
    RESNET8_L2 on every conv kernel (none on the dense layer). At width=16, 32x32x3, 10 classes:
    78,666 parameters (78,186 trainable), the reference's count.

    Differences from the reference, each on purpose:
      - Input float32 [N, H, W, C] in [0, 1]. The reference trains on raw CIFAR-10 pixels
        0..255 (train.py feeds the uint8 batches to ImageDataGenerator without rescale); a BN
        follows the stem conv, so the input scale is normalized away, and the reference's
        trained weights work here with the stem kernel multiplied by 255.
      - Output logits (float32 [N, num_classes], no softmax; the loss takes logits).
      - Global average pooling instead of AveragePooling2D(pool_size=min(H, W)) + Flatten:
        the same for square inputs (8x8 at 32x32), and defined for any H, W.
      - BN momentum 0.9, not Keras's 0.99, for small_cnn's reason: with 0.99 the moving
        statistics still lag the weights after a short run (the stage runner also
        re-estimates them after training, train/batchnorm.py).

    Args:
      input_shape: (height, width, channels); any size (the spatial size is divided by 4).
      num_classes: number of logits.
      width: filters of the stem and first stack (16 = the reference).
    Returns:
      a functional tf_keras Model `name`: float32 [N, H, W, C] -> float32 [N, num_classes].
    Raises:
      ValueError: width < 1.
    """
    if width < 1:
        raise ValueError(f"width={width}: must be ≥ 1")

    def conv(x, filters, kernel, strides, name):
        return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                   kernel_initializer="he_normal",
                                   kernel_regularizer=keras.regularizers.l2(RESNET8_L2),
                                   name=name)(x)

    def bn(x, name):
        return keras.layers.BatchNormalization(momentum=0.9, name=name)(x)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv(inputs, width, 3, 1, "stem_conv")
    x = keras.layers.ReLU(name="stem_relu")(bn(x, "stem_bn"))
    for stack, (multiplier, strides) in enumerate(((1, 1), (2, 2), (4, 2)), start=1):
        filters, prefix = width * multiplier, f"stack{stack}_"
        y = conv(x, filters, 3, strides, prefix + "conv1")
        y = keras.layers.ReLU(name=prefix + "relu1")(bn(y, prefix + "bn1"))
        y = bn(conv(y, filters, 3, 1, prefix + "conv2"), prefix + "bn2")
        if strides != 1 or int(x.shape[-1]) != filters:
            x = conv(x, filters, 1, strides, prefix + "shortcut")
        x = keras.layers.Add(name=prefix + "add")([x, y])
        x = keras.layers.ReLU(name=prefix + "relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # float32 even under a mixed policy (small_cnn's comment).
    outputs = keras.layers.Dense(num_classes, dtype="float32", kernel_initializer="he_normal",
                                 name=HEAD_LAYER)(x)
    return keras.Model(inputs, outputs, name=name)


# airbench's (and Page's 0.125) scale on the logits while training: a 9x smaller head output
# keeps the first steps of a high-rate SGD from blowing the loss up (docs/photo_recipe.md).
AIRBENCH_LOGIT_SCALE = 1 / 9
LOGIT_SCALE_LAYER = "logit_scale"


# The airbench stem's layer name, and the training images its whitening initialization
# estimates the 2x2 patch covariance from (2,000 × 31 × 31 patches at 32 px).
WHITENING_LAYER = "stem_conv"
WHITENING_IMAGES = 2000


def airbench(input_shape, num_classes, width=64, stem_width=None, name="airbench"):
    """The fast CIFAR-10 network of airbench (Keller Jordan 2024, "94% on CIFAR-10 in 3.29
    seconds on a single GPU", arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench,
    airbench94.py), shaped for int8 export and tfmot.

    Layout: a 2x2 "valid" stem convolution with `stem_width` filters (airbench's whitening
    layer: whitening_kernel sets it from the training images, as the stage runner's float
    job does; it keeps training after that), then three blocks of
    conv3x3-BN-ReLU, 2x2 max-pool, conv3x3-BN-ReLU with width, 2·width and 4·width filters,
    global max pooling and a dense logits layer. At 32x32 the blocks run at 31, 15 and 7 px
    and pool down to 3x3, as airbench's do.

    Differences from airbench94, each on purpose (measurements: docs/photo_recipe.md):
      - Widths width/2·width/4·width (64/128/256 by default) instead of 64/256/256: 1.8x fewer
        multiply-accumulates (65 M vs 118 M per 32x32 image), which is what a 2-core CPU
        trains in minutes.
      - ReLU instead of GELU: GELU trains ~1.9x slower here in tf_keras (466 vs 250 images/s
        at airbench's widths) and int8 LiteRT kernels and tfmot's QAT handle ReLU natively.
      - BN follows each conv directly (conv-BN-ReLU, then pool): the pattern tfmot folds for
        QAT and the converter folds into the int8 convolution; airbench pools between the
        first conv and its BN. BN keeps its scale (gamma).
      - The whitened stem is followed by BN and ReLU and keeps training (airbench freezes
        its weights and trains only its bias for 3 epochs, then freezes that too).
      - The logits are scaled by AIRBENCH_LOGIT_SCALE (airbench's 1/9) in a layer named
        LOGIT_SCALE_LAYER while training; fold_logit_scale folds it into the logits layer's
        kernel and bias when training ends (the stage runner does), so saved and exported
        models end in a plain Dense.

    Args:
      input_shape: (height, width, channels); at least 16 px each side (three 2x pools after
        the 2x2 stem).
      num_classes: number of logits.
      width: filters of the first block (the others have 2x and 4x).
      stem_width: filters of the 2x2 stem convolution (None: 2 × 2·2·channels, 24 for RGB:
        every whitening direction of a 2x2 patch with both signs).
    Returns:
      a functional tf_keras Model `name`: float32 [N, H, W, C] in [0, 1] -> float32
      [N, num_classes] logits.
    Raises:
      ValueError: width or stem_width < 1.
      UserError: an input smaller than 16 px.
    """
    if stem_width is None:
        stem_width = 2 * 2 * 2 * input_shape[-1]
    if width < 1 or stem_width < 1:
        raise ValueError(f"width={width}, stem_width={stem_width}: both must be ≥ 1")
    if min(input_shape[:2]) < 16:
        raise UserError(f"--model=airbench needs images of at least 16x16, got "
                        f"{input_shape[0]}x{input_shape[1]}; pass --image_size=32 or use "
                        f"--model=small_cnn")

    def conv_bn_relu(x, filters, kernel, prefix, padding="same"):
        x = keras.layers.Conv2D(filters, kernel, padding=padding, use_bias=False,
                                name=prefix + "conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=prefix + "bn")(x)
        return keras.layers.ReLU(name=prefix + "relu")(x)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv_bn_relu(inputs, stem_width, 2, "stem_", padding="valid")  # WHITENING_LAYER
    for block, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = conv_bn_relu(x, filters, 3, f"block{block}_1_")
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = conv_bn_relu(x, filters, 3, f"block{block}_2_")
    x = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    # float32 even under a mixed policy (small_cnn's comment).
    x = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(x)
    outputs = keras.layers.Rescaling(AIRBENCH_LOGIT_SCALE, dtype="float32",
                                     name=LOGIT_SCALE_LAYER)(x)
    return keras.Model(inputs, outputs, name=name)


def whitening_kernel(pixels, kernel_size=2, eps=5e-4):
    """airbench's whitening initialization of a k x k "valid" convolution (Jordan 2024, §3.3,
    after Page 2018's 3x3 whitening): the eigenvectors of the k x k patch covariance of
    training images, each divided by the square root of its eigenvalue (+ eps), largest
    first, then the same filters negated (the ReLU after the layer keeps both signs).

    Args:
      pixels: uint8 [N, H, W, C] training images (data.sample_pixels), scaled by 1/255 here
        as the model's input is; N·(H-k+1)·(W-k+1) patches are used, centred.
      kernel_size: k.
      eps: added to each eigenvalue (airbench's 5e-4).
    Returns:
      float32 [k, k, C, 2·k·k·C]: a Conv2D kernel.
    Raises:
      ValueError: pixels not 4-D or smaller than k.
    """
    import numpy as np

    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or min(pixels.shape[1:3]) < kernel_size:
        raise ValueError(f"pixels of shape {pixels.shape}: need [N, H, W, C] with H, W ≥ "
                         f"{kernel_size}")
    k, c = kernel_size, pixels.shape[-1]
    x = pixels.astype(np.float32) / 255.0
    # [N, H', W', C, k, k] -> rows of (k, k, C) patches: the order of a Conv2D kernel's axes
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c).astype(np.float64)
    patches -= patches.mean(axis=0)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)
    kernel = np.concatenate([filters, -filters], axis=1)
    return kernel.reshape(k, k, c, 2 * k * k * c).astype(np.float32)


def init_whitening(model, pixels):
    """Sets `model`'s WHITENING_LAYER kernel to whitening_kernel(pixels) when the layer's
    shape is the whitening kernel's (airbench's stem at its default stem_width). Returns True
    when it did, False for a model without such a layer (left unchanged)."""
    names = [layer.name for layer in model.layers]
    if WHITENING_LAYER not in names:
        return False
    layer = model.get_layer(WHITENING_LAYER)
    k, channels = layer.kernel_size[0], layer.kernel.shape[2]
    if tuple(layer.kernel.shape) != (k, k, channels, 2 * k * k * channels):
        return False  # another stem_width: no whitening kernel fits (checked before computing)
    layer.kernel.assign(whitening_kernel(pixels, k))
    return True


def fold_logit_scale(model):
    """`model` with its trailing LOGIT_SCALE_LAYER (a Rescaling of the logits) folded into the
    HEAD_LAYER Dense before it: kernel and bias × scale, the same function with one layer
    fewer (what tfmot and the int8 converter then see). A model without that layer is
    returned unchanged.

    Args:
      model: a functional tf_keras model whose output is LOGIT_SCALE_LAYER(HEAD_LAYER(x)).
    Returns:
      a functional model with the same inputs, name and weights except the head's.
    Raises:
      ValueError: a LOGIT_SCALE_LAYER that does not directly follow a Dense HEAD_LAYER.
    """
    names = [layer.name for layer in model.layers]
    if LOGIT_SCALE_LAYER not in names:
        return model
    scale_layer, head = model.get_layer(LOGIT_SCALE_LAYER), model.get_layer(HEAD_LAYER)
    if scale_layer.input is not head.output or scale_layer.offset:
        raise ValueError(f"{model.name}: {LOGIT_SCALE_LAYER} must scale the output of "
                         f"{HEAD_LAYER} directly, with no offset")
    folded = keras.layers.Dense(head.units, use_bias=head.use_bias, dtype="float32",
                                name=HEAD_LAYER)
    outputs = folded(head.input)
    scale = float(scale_layer.scale)
    folded.set_weights([w * scale for w in head.get_weights()])
    return keras.Model(model.inputs, outputs, name=model.name)


def _check_size(model, input_shape):
    h, w = input_shape[:2]
    if min(h, w) < 32:
        raise UserError(f"--model={model} needs images of at least 32x32, got {h}x{w}; "
                        f"pass --image_size=32 (or larger)")


def _check_weights_path(weights, what):
    if weights is not None and weights != "imagenet" and not (
            os.path.isfile(weights) or os.path.isfile(weights + ".index")):
        raise UserError(f"--weights={weights}: no such weights file; give {what}")


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
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    # keras.applications' MobileNetV3 expects [-1, 1] after its own Rescaling(1/127.5, -1)
    # of 0..255 pixels (include_preprocessing=True); the tftool pipeline gives [0, 1], so the
    # model's Rescaling is left out and this one maps [0, 1] to the same [-1, 1].
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    # input_tensor= keeps one flat graph: tfmot cannot quantize a model nested in a model.
    try:
        base = application(input_tensor=x, alpha=alpha, minimalistic=minimalistic,
                           include_top=False, pooling="avg", include_preprocessing=False,
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
        except (ValueError, OSError, tf.errors.OpError, AssertionError) as e:
            # AssertionError: a TF checkpoint of another model (Keras's assert_consumed)
            raise UserError(
                f"--weights={weights} does not fit {model} --alpha={alpha} minimalistic="
                f"{minimalistic} with {c} channel(s) ({first_line(e, 160)}); give the weights of "
                f"{backbone} saved with the same alpha and channels") from e
    outputs = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(base.output)
    return keras.Model(inputs, outputs, name=name)


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


MODELS = {
    "small_cnn": small_cnn,
    "mobilenet_v2": mobilenet_v2,
    "resnet8": resnet8,
    "mobilenet_v3_small": mobilenet_v3_small,
    "mobilenet_v3_large": mobilenet_v3_large,
    "efficientnet_lite0": efficientnet_lite0,
    "airbench": airbench,
}


def macs(model):
    """Multiply-accumulates of one inference (batch 1) of a built tf_keras model: the sum over
    its Conv2D (H_out·W_out·C_out·k_h·k_w·C_in/groups), DepthwiseConv2D
    (H_out·W_out·C_in·multiplier·k_h·k_w) and Dense (inputs·units) layers — the convention of
    the MobileNet papers' "mult-adds"; BN, activations and pooling are not counted. Layers
    inside tfmot's pruning and QAT wrappers count as the layers they wrap.
    Raises: ValueError: a layer of those kinds with unknown (None) spatial output size."""
    total = 0
    for outer in model.layers:
        # tfmot's pruning and QAT wrappers (PruneLowMagnitude, QuantizeWrapper) hold the layer
        # in .layer; the shapes are the wrapper's (the same as the wrapped layer's)
        layer = getattr(outer, "layer", outer)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and None in \
                tuple(outer.output_shape[1:3]):
            raise ValueError(f"{outer.name}: unknown output size {outer.output_shape}; build "
                             f"the model with a fixed input size")
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = outer.output_shape
            kh, kw = layer.kernel_size
            total += h * w * c_out * kh * kw  # c_out = C_in · multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = outer.output_shape
            kh, kw = layer.kernel_size
            c_in = outer.input_shape[-1]
            total += h * w * c_out * kh * kw * c_in // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += int(outer.input_shape[-1]) * layer.units
    return int(total)


def is_user_builder(name):
    """Whether `name` names a builder of the user's, "file.py:function" or
    "package.module:function", rather than one of MODELS."""
    return name not in MODELS and ":" in name


def user_module(where, flag, fix=""):
    """The user's Python code `where`: a file (file.py, relative to the current folder or
    absolute) executed as a module, or an importable package.module. `flag` ("--model=...")
    and `fix` go into the errors.
    Raises: UserError: a missing file, an import that fails (its first line)."""
    import importlib
    import importlib.util

    try:
        if where.endswith(".py"):
            path = os.path.abspath(os.path.expanduser(where))
            if not os.path.isfile(path):
                raise UserError(f"{flag}: no such file {path}{fix}")
            spec = importlib.util.spec_from_file_location(
                "tftool_user_" + os.path.basename(path)[:-3], path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except UserError:
        raise
    except Exception as e:  # the user's code: name it in one line, no traceback
        first = (str(e).splitlines() or [""])[0]
        raise UserError(f"{flag}: importing {where} failed: {type(e).__name__}: "
                        f"{first}") from e


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
