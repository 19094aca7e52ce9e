"""Training passes as in the authors' reference code (issue 22).

BatchNorm's moving statistics record the order of a method's training-mode
forwards. With Keras momentum m, each pass on a batch with channel means s
does M <- m M + (1 - m) s (and the same for the biased variance), so the
moving mean after one step is a closed form of the passes and their order.
A model whose first layer is BatchNorm makes s the batch mean of the input.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy

MOMENTUM = 0.9


def _bn_first():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.BatchNormalization(momentum=MOMENTUM),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


def _moving(mean, variance, batches):
    """Moving (mean, variance) after passes over `batches`, in order."""
    for batch in batches:
        mean = MOMENTUM * mean + (1 - MOMENTUM) * batch.mean()
        variance = MOMENTUM * variance + (1 - MOMENTUM) * batch.var()
    return mean, variance


@pytest.fixture(scope="module")
def batch(digits):
    (x, y), _ = digits
    return x[:32], y[:32]


def _one_step(method, x, y, **kwargs):
    classifier = _bn_first()
    # A deterministic CE attack, so x* can be computed outside the step: it
    # runs before the outer passes, on the initial moving statistics.
    attack = kr.attacks.PGD(0.3, step_size=0.15, steps=2, random_start="none")
    model = getattr(kr.models, method)(classifier, attack=attack, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x_adv = to_numpy(attack(lambda z: classifier(z, training=False), x, y))
    assert abs(x_adv.mean() - x.mean()) > 0.01  # the order is visible
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    layer = classifier.layers[0]
    moving = float(to_numpy(layer.moving_mean)[0])
    variance = float(to_numpy(layer.moving_variance)[0])
    return moving, variance, x_adv


@pytest.mark.parametrize(
    "moving_statistics, order",
    [("reference", "x x* x"), ("two_pass", "x x*")],
)
def test_trades_moving_statistics_follow_the_reference_passes(
    batch, moving_statistics, order
):
    # yaodongyu/TRADES trades.py l. 79-82: f(x), then f(x*) and f(x) in the KL.
    x, y = batch
    moving, variance, x_adv = _one_step(
        "TRADES", x, y, moving_statistics=moving_statistics
    )
    passes = [{"x": x, "x*": x_adv}[name] for name in order.split()]
    expected_mean, expected_variance = _moving(0.0, 1.0, passes)
    np.testing.assert_allclose(moving, expected_mean, rtol=1e-4)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-4)


def test_trades_moving_statistics_option_is_checked_and_saved():
    with pytest.raises(ValueError, match="moving_statistics"):
        kr.models.TRADES(_bn_first(), moving_statistics="three")
    model = kr.models.TRADES(_bn_first(), moving_statistics="two_pass")
    assert model.get_config()["moving_statistics"] == "two_pass"
    assert kr.models.TRADES.from_config(model.get_config()).moving_statistics == (
        "two_pass"
    )
    assert kr.models.TRADES(_bn_first()).moving_statistics == "reference"


def test_weat_moving_statistics_follow_its_two_reference_passes(batch):
    # WEAT_loss.py l. 82-83 (and 133-134): f(x), then f(x*); no third pass.
    x, y = batch
    moving, variance, x_adv = _one_step("WEAT", x, y)
    expected_mean, expected_variance = _moving(0.0, 1.0, [x, x_adv])
    np.testing.assert_allclose(moving, expected_mean, rtol=1e-4)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-4)


def test_dyart_runs_the_boundary_pass_before_the_clean_pass(batch):
    # DyART_Linf.py l. 254 (f(x_bdr)) before l. 260 (f(x)), both training mode.
    x, _ = batch
    classifier = _bn_first()
    model = kr.models.DyART(classifier, search_steps=1)
    boundary = np.clip(x + 0.3, 0.0, 1.0).astype("float32")
    zeros = np.zeros(len(x), "float32")
    data = {
        "x_boundary": boundary,
        "margin_weights": zeros,
        "kept": zeros > 0,
        "radius": zeros,
    }
    model.compute_logits(keras.ops.convert_to_tensor(x), data, training=True)
    moving = float(to_numpy(classifier.layers[0].moving_mean)[0])
    expected, _ = _moving(0.0, 1.0, [boundary, x])
    np.testing.assert_allclose(moving, expected, rtol=1e-4)
