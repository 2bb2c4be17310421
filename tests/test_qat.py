import numpy as np
import pytest

from tftool import models, workdir
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
