"""resnet8: the MLPerf Tiny image-classification reference model (CIFAR-10)."""
import tf_keras as keras

from tftool.models.common import HEAD_LAYER


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
