"""Save/load round trips of every method (safe_mode on)."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("AT", {"norm": "l2", "epsilon": 0.5, "step_size": 0.1, "steps": 2}),
        ("TRADES", {"beta": 3.0, "steps": 2, "attack_training_mode": True}),
        (
            "MART",
            {
                "beta": 5.0,
                "attack": kr.attacks.PGD(
                    0.1, steps=2, loss="ce", random_start="normal"
                ),
                "eval_attack": kr.attacks.PGD(0.1, steps=3, loss="cw"),
            },
        ),
        ("WEAT", {"variant": "nat", "normalize_weights": True, "steps": 2}),
    ],
)
def test_save_load_round_trip(tmp_path, digits, method, kwargs):
    (x, y), (xt, _) = digits
    model = getattr(kr.models, method)(tiny_cnn(batch_norm=True), seed=5, **kwargs)
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
    path = tmp_path / f"{method}.keras"
    model.save(path)

    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is type(model)
    np.testing.assert_array_equal(
        to_numpy(restored.predict(xt, verbose=0)),
        to_numpy(model.predict(xt, verbose=0)),
    )
    for key in (
        "epsilon",
        "step_size",
        "steps",
        "norm",
        "attack_training_mode",
        "seed",
    ):
        assert getattr(restored, key) == getattr(model, key)
    for key in ("beta", "variant", "normalize_weights"):
        assert getattr(restored, key, None) == getattr(model, key, None)
    assert restored.attack.get_config() == model.attack.get_config()
    assert type(restored.attack) is type(model.attack)
    assert restored.eval_attack.get_config() == model.eval_attack.get_config()
    # The optimizer state (iterations, Adam moments) comes back too.
    assert int(to_numpy(restored.optimizer.iterations)) == 2
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(loaded))
    # The restored model is compiled and keeps training.
    history = restored.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
