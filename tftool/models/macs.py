"""Counting the multiply-accumulates of one inference of a built model."""
import tf_keras as keras


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
