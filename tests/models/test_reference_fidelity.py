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


# ---- the +1e-12 floor inside the KL's log (WEAT_loss.py, mart.py) ----------


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _floored_kl(natural, adversarial):
    p, q = _softmax(natural), _softmax(adversarial)
    return np.sum(p * (np.log(p) - np.log(q + 1e-12)), axis=1)


@pytest.fixture(scope="module")
def extreme_logits():
    # p(2|x*) ~ 1e-22 while p(2|x) ~ 0.5: log-softmax gives a KL of ~25,
    # the floored log caps it near 0.5 * (log 0.5 - log 1e-12) ~ 13.5.
    natural = np.array([[0.0, -30.0, 0.0], [1.0, 0.5, -0.5]], "float32")
    adversarial = np.array([[0.0, 0.0, -50.0], [0.2, 0.1, 0.3]], "float32")
    return natural, adversarial, np.array([0, 1])


def test_weat_loss_uses_the_floored_log(extreme_logits):
    natural, adversarial, y = extreme_logits
    p = _softmax(natural)
    weights = 1.0 / np.log1p(np.exp(np.abs(-np.log(np.exp(natural).sum(1)))))
    ce_adv = -np.log(_softmax(adversarial)[np.arange(2), y])
    expected = np.mean(weights * (ce_adv + 6.0 * _floored_kl(natural, adversarial)))
    loss = kr.losses.weat_loss(y, natural, adversarial, beta=6.0)
    np.testing.assert_allclose(float(to_numpy(loss)), expected, rtol=1e-5)
    exact = kr.losses.weat_loss(y, natural, adversarial, beta=6.0, kl_floor=None)
    assert float(to_numpy(exact)) > expected + 1.0
    assert p[0, 2] > 0.4


def test_mart_loss_uses_the_floored_log(extreme_logits):
    natural, adversarial, y = extreme_logits
    q = _softmax(adversarial)
    p = _softmax(natural)
    rows = np.arange(2)
    other = np.where(np.arange(3)[None] == y[:, None], -1.0, q).argmax(1)
    boosted = -np.log(q[rows, y]) - np.log(1.0001 - q[rows, other] + 1e-12)
    kl = _floored_kl(natural, adversarial) * (1.0000001 - p[rows, y])
    expected = np.mean(boosted + 6.0 * kl)
    loss = kr.losses.mart_loss(y, natural, adversarial, beta=6.0)
    np.testing.assert_allclose(float(to_numpy(loss)), expected, rtol=1e-5)


def test_weat_attack_maximises_the_floored_kl(extreme_logits):
    natural, adversarial, y = extreme_logits
    model = kr.models.WEAT(_bn_first())
    assert isinstance(model.attack, kr.models.reference_attacks.FlooredKLPGD)
    assert model.attack.random_start == "normal"
    objective = model.attack.objective(y, keras.ops.convert_to_tensor(natural))
    values = to_numpy(objective(keras.ops.convert_to_tensor(adversarial)))
    np.testing.assert_allclose(values, _floored_kl(natural, adversarial), rtol=1e-5)
    plain = kr.models.WEAT(_bn_first(), kl_floor=None)
    assert type(plain.attack) is kr.attacks.PGD and plain.attack.loss == "kl"
    restored = kr.models.WEAT.from_config(plain.get_config())
    assert restored.kl_floor is None


# ---- TRADES' L2 attack (trades.py l. 42-70) ---------------------------------


def _reference_l2(weights, bias, x, y, epsilon, steps, step_size):
    """trades.py's L2 loop on a linear model, CE objective, zero start."""
    delta = np.zeros_like(x)
    onehot = np.eye(weights.shape[1])[y]
    for _ in range(steps):
        z = x + delta
        gradient = (_softmax(z @ weights + bias) - onehot) @ weights.T
        gradient /= np.linalg.norm(gradient, axis=1, keepdims=True)
        delta = delta + step_size * gradient
        delta = np.clip(x + delta, 0.0, 1.0) - x
        norm = np.linalg.norm(delta, axis=1, keepdims=True)
        delta = np.where(norm > epsilon, delta * epsilon / (norm + 1e-7), delta)
    return x + delta


def test_trades_l2_attack_follows_the_reference_loop(digits):
    from tests.helpers import linear_classifier

    (x, y), _ = digits
    x, y = x[:16].reshape(16, -1).astype("float64"), y[:16]
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(64, 10)), rng.normal(size=10) * 0.1
    epsilon, steps = 1.5, 3
    attack = kr.models.reference_attacks.TradesL2PGD(
        epsilon, steps=steps, loss="ce", random_start="none"
    )
    assert attack.step_size == pytest.approx(2 * epsilon / steps)
    x_adv = to_numpy(attack(linear_classifier(weights, bias), x.astype("float32"), y))
    expected = _reference_l2(weights, bias, x, y, epsilon, steps, 2 * epsilon / steps)
    np.testing.assert_allclose(x_adv, expected, atol=2e-5)
    # Box then ball: the generic PGD-L2 (ball then box) ends elsewhere here.
    generic = kr.attacks.PGD(
        epsilon,
        step_size=2 * epsilon / steps,
        steps=steps,
        norm="l2",
        random_start="none",
    )
    x_generic = to_numpy(generic(linear_classifier(weights, bias), x, y))
    assert np.abs(x_generic - expected).max() > 1e-3


def test_trades_l2_attack_replaces_a_zero_gradient_by_noise():
    from tests.helpers import linear_classifier

    x = np.full((4, 6), 0.5, "float32")
    y = np.zeros(4, "int64")
    flat = linear_classifier(np.zeros((6, 3)), np.zeros(3))  # gradient 0
    attack = kr.models.reference_attacks.TradesL2PGD(
        0.3, steps=2, loss="ce", random_start="none", seed=0
    )
    delta = to_numpy(attack(flat, x, y)) - x
    sizes = np.linalg.norm(delta, axis=1)
    assert np.all(sizes > 0.05) and np.all(sizes <= 0.3 + 1e-5)
    stays = kr.attacks.PGD(0.3, steps=2, norm="l2", random_start="none")
    np.testing.assert_array_equal(to_numpy(stays(flat, x, y)), x)


def test_trades_norm_l2_defaults_to_the_reference_attack():
    model = kr.models.TRADES(_bn_first(), norm="l2", epsilon=0.5, steps=5)
    assert isinstance(model.attack, kr.models.reference_attacks.TradesL2PGD)
    assert model.step_size == pytest.approx(0.2)
    assert model.attack.random_start == "normal" and model.attack.loss == "kl"
    assert kr.models.TRADES(_bn_first()).step_size == pytest.approx(2 / 255)
    restored = kr.models.TRADES.from_config(model.get_config())
    assert isinstance(restored.attack, kr.models.reference_attacks.TradesL2PGD)


# ---- the Smooth Adversarial Training recipe (ResNet/adv_model.py) -----------


def test_sat_recipe_is_the_reference_attacker_and_loss():
    model = kr.models.AT.sat_recipe(_bn_first(), epsilon=0.2, step_size=0.01, steps=10)
    attack = model.attack
    assert isinstance(attack, kr.models.reference_attacks.CleanStartPGD)
    assert attack.clean_start_probability == 0.2
    assert model.attack_training_mode is False  # adv_model.py l. 189
    assert model.label_smoothing == 0.1
    # adv_model.py l. 59: step = max(step, epsilon / steps).
    assert attack.step_size == pytest.approx(0.02) == model.step_size
    restored = kr.models.AT.from_config(model.get_config())
    assert isinstance(restored.attack, kr.models.reference_attacks.CleanStartPGD)
    assert restored.label_smoothing == 0.1 and restored.attack_training_mode is False


def test_clean_start_is_drawn_once_per_batch():
    attack = kr.models.reference_attacks.CleanStartPGD(0.1)
    x = np.full((3, 50), 0.99, "float32")
    seed = keras.random.SeedGenerator(0)
    clean = 0
    tensor = keras.ops.convert_to_tensor(x)
    for _ in range(200):
        delta = to_numpy(attack.start(tensor, lambda index: seed)) - x
        if np.all(delta == 0):
            clean += 1
        else:
            assert np.all(delta != 0) and np.abs(delta).max() <= 0.1 + 1e-6
            assert (x + delta).max() > 1.0  # not clipped before the first step
    assert 20 <= clean <= 62  # binomial(200, 0.2): 40 +- 5.7


def test_at_label_smoothing_is_the_tf_formula():
    logits = np.array([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2]], "float32")
    y = np.array([0, 2])
    targets = np.eye(3)[y] * 0.9 + 0.1 / 3
    log_p = np.log(_softmax(logits))
    expected = -np.mean(np.sum(targets * log_p, axis=1))
    model = kr.models.AT(_bn_first(), label_smoothing=0.1)
    loss = model.compute_objective(y, logits, logits)
    np.testing.assert_allclose(float(to_numpy(loss)), expected, rtol=1e-5)
    plain = kr.models.AT(_bn_first()).compute_objective(y, logits, logits)
    np.testing.assert_allclose(
        float(to_numpy(plain)), -np.mean(log_p[np.arange(2), y]), rtol=1e-5
    )
    with pytest.raises(ValueError, match="label_smoothing"):
        kr.models.AT(_bn_first(), label_smoothing=1.0)
