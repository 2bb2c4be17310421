import numpy as np
import pytest
import tf_keras as keras

from tftool.train import schedules


def values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_constant():
    np.testing.assert_allclose(values(schedules.build("constant", 0.1, 100), [0, 50, 99]), 0.1)


def test_cosine_decays_to_zero():
    v = values(schedules.build("cosine", 0.1, 100), [0, 50, 100])
    np.testing.assert_allclose(v, [0.1, 0.05, 0.0], atol=1e-6)


def test_cosine_warmup_rises_linearly_then_decays():
    s = schedules.build("cosine_warmup", 0.1, 110, warmup_steps=10)
    v = values(s, [0, 5, 10, 60, 110])
    np.testing.assert_allclose(v, [0.0, 0.05, 0.1, 0.05, 0.0], atol=1e-6)


def test_exponential_reaches_decay_rate_at_end():
    v = values(schedules.build("exponential", 0.1, 100, decay_rate=0.1), [0, 100])
    np.testing.assert_allclose(v, [0.1, 0.01], rtol=1e-5)


def test_piecewise_drops_at_half_and_three_quarters():
    v = values(schedules.build("piecewise", 0.1, 100), [0, 49, 51, 76])
    np.testing.assert_allclose(v, [0.1, 0.1, 0.01, 0.001], rtol=1e-5)


@pytest.mark.parametrize("name", schedules.SCHEDULES)
def test_config_round_trip(name):
    s = schedules.build(name, 0.02, 200, warmup_steps=20)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert type(restored) is type(s)
    steps = [0, 10, 20, 100, 150, 199]
    np.testing.assert_allclose(values(restored, steps), values(s, steps), rtol=1e-6)


def test_optimizer_with_schedule_round_trips():
    opt = keras.optimizers.Adam(schedules.build("constant", 0.003, 10))
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored._learning_rate, schedules.Constant)
    assert float(restored._learning_rate(5)) == pytest.approx(0.003)


def test_errors_name_allowed_values():
    with pytest.raises(ValueError, match="allowed: constant, cosine"):
        schedules.build("linear", 0.1, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.build("cosine_warmup", 0.1, 10, warmup_steps=10)
