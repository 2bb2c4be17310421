"""airbench: Keller Jordan's fast CIFAR-10 network shaped for int8 export, with its whitening
initialization of the stem (whitening_kernel, init_whitening) and the fold of its logit scale
into the logits layer when training ends (fold_logit_scale)."""
from tftool import UserError

import tf_keras as keras

from tftool.models.common import HEAD_LAYER


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
