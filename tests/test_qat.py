import numpy as np
import pytest

from tftool import models, io as workdir
from tftool.optimize import qat


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=4)


def test_apply_wraps_layers_and_keeps_outputs_close(model):
    q = qat.apply(model)
    assert any(type(l).__name__ == "QuantizeWrapperV2" for l in q.layers)
    x = np.random.RandomState(0).rand(8, 8, 8, 1).astype(np.float32)
    assert q.predict(x, verbose=0).shape == (8, 10)
    assert q is not model and not any("quant" in l.name for l in model.layers)


def test_qat_model_saves_and_loads(model, tmp_path):
    q = qat.apply(model)
    path = str(tmp_path / "model.h5")
    workdir.save_model(q, path)
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(workdir.load_model(path).predict(x, verbose=0),
                               q.predict(x, verbose=0), atol=1e-6)


def test_prune_preserve_scheme(model):
    q = qat.apply(model, scheme="prune_preserve")
    assert any(type(l).__name__ == "QuantizeWrapperV2" for l in q.layers)


def test_unknown_scheme(model):
    with pytest.raises(ValueError, match="allowed: default, prune_preserve"):
        qat.apply(model, scheme="int4")


def test_mobilenet_v2_rescaling_gets_an_output_config():
    """tfmot's registry lacks Rescaling (mobilenet_v2's input layer); qat.apply handles it."""
    import numpy as np

    from tftool import models

    model = models.build("mobilenet_v2", (32, 32, 3), 10, alpha=0.35)
    wrapped = qat.apply(model)
    x = np.random.RandomState(0).rand(2, 32, 32, 3).astype(np.float32)
    assert any("to_minus1_1" in layer.name for layer in wrapped.layers)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=0.5)  # fake-quant before any training: close, not equal
