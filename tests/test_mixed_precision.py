"""Mixed precision: `keras.mixed_precision` policies with every method and attack.

Under "mixed_float16" / "mixed_bfloat16" the classifier computes in 16 bits
while its variables stay float32. Attacks must still work in float32 (x*, the
step, the projection: a 16-bit x* cannot even represent an 8/255 step near
1.0 accurately, and a 16-bit input gradient can underflow to 0, which stops a
sign-gradient attack), and losses must be computed from float32 logits.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy

METHODS = ("AT", "TRADES", "MART", "WEAT", "SCORE", "FastAT", "DyART")
POLICIES = ("mixed_float16", "mixed_bfloat16")
EPSILON = 0.1


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def _net():
    return kr.architectures.SmallCNN(10, (8, 8, 1), filters=(8,), dense_units=0)


# Every method under float16 (the loss-scaled path), two under bfloat16.
@pytest.mark.parametrize(
    "policy, method",
    [("mixed_float16", m) for m in METHODS]
    + [("mixed_bfloat16", m) for m in ("AT", "TRADES")],
    indirect=["policy"],
)
def test_every_method_trains_under_a_mixed_policy(digits, policy, method):
    (x, y), _ = digits
    net = _net()
    assert keras.backend.standardize_dtype(net(x[:2]).dtype) == policy[6:]
    kwargs = {"search_steps": 2} if method == "DyART" else {}
    if method not in ("FastAT", "DyART"):
        kwargs["steps"] = 2
    model = getattr(kr.models, method)(net, epsilon=EPSILON, seed=0, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"])
    # Keras wraps the optimizer in a LossScaleOptimizer for float16 only.
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    before = [to_numpy(w).copy() for w in net.trainable_weights]
    history = model.fit(x[:128], y[:128], batch_size=32, epochs=1, verbose=0)

    assert all(np.isfinite(v[0]) for v in history.history.values())
    assert history.history["loss"][0] > 0
    after = [to_numpy(w) for w in net.trainable_weights]
    assert all(w.dtype == np.float32 for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


@pytest.fixture(scope="module")
def trained_weights(digits):
    """Weights of a small classifier trained (float32) on digits."""
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    net = _net()
    net.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    net.fit(x, y, batch_size=64, epochs=8, verbose=0)
    return net.get_weights()


def _attack_accuracy(weights, x, y):
    net = _net()
    net.set_weights(weights)
    attack = kr.attacks.PGD(EPSILON, step_size=EPSILON / 4, steps=10)
    x_adv = attack(net, x, y, seed=0)
    predictions = to_numpy(net.predict(x_adv, verbose=0)).argmax(-1)
    return to_numpy(x_adv), float(np.mean(predictions == y))


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_attacks_stay_float32_and_as_strong_as_in_float32(
    digits, trained_weights, policy
):
    _, (x_test, y_test) = digits
    x, y = x_test[:256], y_test[:256]
    x_adv, mixed = _attack_accuracy(trained_weights, x, y)
    assert x_adv.dtype == np.float32
    assert np.max(np.abs(x_adv - x)) <= EPSILON + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0

    keras.mixed_precision.set_global_policy("float32")
    _, full = _attack_accuracy(trained_weights, x, y)
    clean = _net()
    clean.set_weights(trained_weights)
    clean_accuracy = np.mean(to_numpy(clean.predict(x, verbose=0)).argmax(-1) == y)
    # The attack works (no underflowed gradients) and as well as in float32.
    assert clean_accuracy > 0.8
    assert mixed < clean_accuracy - 0.25
    assert abs(mixed - full) <= 0.05


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_losses_compute_in_float32_from_16_bit_logits(dtype):
    rng = np.random.default_rng(0)
    natural = rng.normal(size=(6, 10)).astype("float32") * 4
    adversarial = natural + rng.normal(size=(6, 10)).astype("float32")
    y = rng.integers(0, 10, size=6)
    low_natural = keras.ops.cast(natural, dtype)
    low_adversarial = keras.ops.cast(adversarial, dtype)
    # The reference: the same 16-bit values, widened before the loss.
    widened = [keras.ops.cast(v, "float32") for v in (low_natural, low_adversarial)]
    for loss in (
        lambda n, a: kr.losses.trades_loss(y, n, a, beta=6.0),
        lambda n, a: kr.losses.mart_loss(y, n, a, beta=6.0),
        lambda n, a: kr.losses.cross_entropy(y, a),
        lambda n, a: kr.energy.marginal_energy(a),
    ):
        value = loss(low_natural, low_adversarial)
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        np.testing.assert_array_equal(to_numpy(value), to_numpy(loss(*widened)))
