"""OneCycle: PyTorch OneCycleLR's learning rates, serialization, bad input."""

import math

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy


def _pytorch_one_cycle(step, max_lr, total, pct_start, div, final_div):
    """torch.optim.lr_scheduler.OneCycleLR (cos, two phases), written out."""
    initial, final = max_lr / div, max_lr / div / final_div
    rise_end, fall_end = pct_start * total - 1, total - 1

    def anneal(start, end, t):
        return end + (start - end) / 2 * (math.cos(math.pi * t) + 1)

    if step <= rise_end:
        return anneal(initial, max_lr, step / rise_end)
    return anneal(max_lr, final, (step - rise_end) / (fall_end - rise_end))


def test_rates_follow_pytorch_one_cycle():
    schedule = kr.schedules.OneCycle(0.1, total_steps=400, pct_start=0.25)
    steps = np.arange(400)
    rates = np.array([float(to_numpy(schedule(s))) for s in steps])
    expected = [_pytorch_one_cycle(s, 0.1, 400, 0.25, 25.0, 1e4) for s in steps]
    # float32: absolute error 1e-8 of a peak of 0.1.
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-8)
    assert rates[0] == pytest.approx(0.1 / 25)
    assert rates.max() == pytest.approx(0.1) and rates.argmax() == 99
    assert rates[-1] == pytest.approx(0.1 / 25 / 1e4)
    assert float(to_numpy(schedule(1000))) == pytest.approx(rates[-1])


def test_drives_an_optimizer_and_round_trips(tmp_path):
    schedule = kr.schedules.OneCycle(0.5, total_steps=20, pct_start=0.3)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=4, epochs=2, verbose=0)
    assert float(to_numpy(optimizer.learning_rate)) == pytest.approx(
        _pytorch_one_cycle(4, 0.5, 20, 0.3, 25.0, 1e4), rel=1e-5
    )
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert restored.get_config() == schedule.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(max_learning_rate=0.0, total_steps=10), "`max_learning_rate`"),
        (dict(max_learning_rate=0.1, total_steps=0), "`total_steps`"),
        (dict(max_learning_rate=0.1, total_steps=10, pct_start=1.0), "`pct_start`"),
        (dict(max_learning_rate=0.1, total_steps=2, pct_start=0.25), "too small"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        kr.schedules.OneCycle(**kwargs)
