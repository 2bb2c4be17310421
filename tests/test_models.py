import numpy as np
import pytest

from tftool import UserError, models


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (96, 64, 3)])
def test_small_cnn_builds_for_each_input_size(shape):
    model = models.build("small_cnn", shape, 10, width=8)
    out = model(np.zeros((2, *shape), np.float32))
    assert out.shape == (2, 10)
    assert model.layers[-1].name == "logits"


def test_small_cnn_width_scales_parameters():
    small = models.build("small_cnn", (8, 8, 1), 10, width=8).count_params()
    big = models.build("small_cnn", (8, 8, 1), 10, width=32).count_params()
    assert big > 8 * small


@pytest.mark.parametrize("shape", [(32, 32, 3), (48, 48, 1)])
def test_mobilenet_v2_builds_flat(shape):
    model = models.build("mobilenet_v2", shape, 5, alpha=0.35)
    assert model(np.zeros((1, *shape), np.float32)).shape == (1, 5)
    # one flat functional graph: tfmot cannot wrap a model nested in a model
    assert not any(hasattr(layer, "layers") for layer in model.layers)


def test_mobilenet_v2_rejects_small_inputs():
    with pytest.raises(UserError, match="--image_size=32"):
        models.build("mobilenet_v2", (28, 28, 1), 10)


def test_unknown_model():
    with pytest.raises(UserError, match="small_cnn, mobilenet_v2"):
        models.build("resnet", (8, 8, 1), 10)
