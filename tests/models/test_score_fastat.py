"""SCORE and FastAT: attacks, one training step, BatchNorm, saving, digits."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.conftest import BACKEND
from tests.digits_training import EPSILON as DIGITS_EPSILON
from tests.digits_training import clean_and_robust_accuracy
from tests.digits_training import train_on_digits
from tests.helpers import FIT_JIT_COMPILE
from tests.helpers import linear_classifier
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy
from tests.models.test_train_step import numeric_gradient
from tests.oracles import np_score
from tests.oracles import np_softmax

EPSILON = 0.2


@pytest.fixture
def small(digits):
    (x, y), _ = digits
    return x[:64], y[:64]


def bn_model(method, **kwargs):
    return getattr(kr.models, method)(
        tiny_cnn(batch_norm=True), epsilon=EPSILON, seed=0, **kwargs
    )


def seeded_uniform_start(x, epsilon, seed):
    """The first uniform start drawn by a model built with `seed=seed`."""
    generator = keras.random.SeedGenerator(seed)
    starts = kr.attacks.norms.random_starts(
        x, 1, "uniform", epsilon, "linf", 0.0, 1.0, lambda _: generator
    )
    return to_numpy(starts[0]).astype("float64")


# ---- construction ------------------------------------------------------------


def test_score_defaults():
    model = kr.models.SCORE(tiny_cnn())
    assert (model.beta, model.distance, model.clip_value) == (3.0, "se", 0.0)
    assert model.label_smoothing == 0.0
    assert model.attack_training_mode is True
    attack = model.attack
    assert type(attack) is kr.attacks.PGD
    assert (attack.loss, attack.random_start) == ("se", "uniform")
    assert (attack.epsilon, attack.step_size, attack.steps) == (8 / 255, 2 / 255, 10)
    assert kr.models.SCORE(tiny_cnn(), distance=2).distance == "l2"
    assert (
        kr.models.SCORE(tiny_cnn(), attack_training_mode=False).attack_training_mode
        is False
    )


def test_fast_at_defaults_follow_epsilon():
    model = kr.models.FastAT(tiny_cnn())
    assert model.epsilon == pytest.approx(8 / 255)
    assert model.step_size == pytest.approx(10 / 255)
    assert model.steps == 1
    assert model.attack_training_mode is True
    assert type(model.attack) is kr.attacks.FGSM
    assert model.attack.random_start == "uniform"
    assert model.attack.loss == "ce"
    assert (model.attack.step_size, model.attack.steps) == (model.step_size, 1)

    scaled = kr.models.FastAT(tiny_cnn(), epsilon=0.1)
    assert scaled.step_size == pytest.approx(0.125)
    assert scaled.attack.step_size == pytest.approx(0.125)
    explicit = kr.models.FastAT(tiny_cnn(), epsilon=0.1, step_size=0.05)
    assert explicit.step_size == explicit.attack.step_size == 0.05
    assert (
        kr.models.FastAT(tiny_cnn(), attack_training_mode=False).attack_training_mode
        is False
    )


@pytest.mark.parametrize(
    "method, kwargs, match",
    [
        ("SCORE", {"distance": "hellinger"}, "distance"),
        ("SCORE", {"clip_value": -1.0}, "clip_value"),
        ("SCORE", {"label_smoothing": 1.0}, "label_smoothing"),
        ("SCORE", {"beta": -1.0}, "beta"),
        ("FastAT", {"steps": 5}, "steps"),
        ("FastAT", {"epsilon": 0.0}, "epsilon"),
        ("FastAT", {"step_size": -0.1}, "step_size"),
    ],
)
def test_bad_hyperparameters(method, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(kr.models, method)(tiny_cnn(), **kwargs)


# ---- attacks -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["SCORE", "FastAT"])
def test_attack_stays_in_ball_and_box(small, method):
    x, y = small
    model = bn_model(method, **({"steps": 3} if method == "SCORE" else {}))
    model(x[:2])
    x_adv = to_numpy(model.generate_adversarial(x, y, training=True))
    assert np.abs(x_adv - x).max() <= EPSILON + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() > EPSILON / 2


@pytest.mark.parametrize("method", ["SCORE", "FastAT"])
def test_attack_uses_batch_statistics_without_updating_them(small, method):
    x, y = small
    results = {}
    for mode in (True, False):
        model = bn_model(method, attack_training_mode=mode)
        model(x[:2])
        for variable in model.classifier.non_trainable_variables:
            if "moving_mean" in variable.path:
                variable.assign(np.full(variable.shape, 5.0, "float32"))
        before = [to_numpy(v).copy() for v in model.classifier.non_trainable_variables]
        results[mode] = to_numpy(model.generate_adversarial(x, y, training=True))
        after = [to_numpy(v) for v in model.classifier.non_trainable_variables]
        for b, a in zip(before, after):
            np.testing.assert_array_equal(b, a)
    # Same seed, same start: only the BatchNorm statistics differ.
    assert np.abs(results[True] - results[False]).max() > 0.01


def np_fgsm_ce(weights, bias, x, x_start, y, epsilon, step):
    one_hot = np.eye(weights.shape[1])[y]
    gradient = (np_softmax(x_start @ weights + bias) - one_hot) @ weights.T
    x_adv = x_start + step * np.sign(gradient)
    return np.clip(np.clip(x_adv, x - epsilon, x + epsilon), 0.0, 1.0)


def test_fast_at_is_one_fgsm_step_from_the_seeded_uniform_start():
    rng = np.random.default_rng(7)
    weights, bias = rng.normal(size=(6, 4)), rng.normal(size=4) * 0.1
    x = rng.uniform(0.0, 1.0, size=(32, 6)).astype("float32")
    y = rng.integers(0, 4, size=32)
    epsilon = 0.1
    model = kr.models.FastAT(linear_classifier(weights, bias), epsilon=epsilon, seed=3)
    x_adv = to_numpy(model.generate_adversarial(x, y, training=True))

    # The same draw as the model's first one: a fresh generator with its seed.
    x_start = seeded_uniform_start(x, epsilon, seed=3)
    assert 0.5 * epsilon < np.abs(x_start - x).max() <= epsilon + 1e-6
    expected = np_fgsm_ce(weights, bias, x, x_start, y, epsilon, 1.25 * epsilon)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)
    # Invariants, and a single step: the start moved by at most 1.25 eps.
    assert np.abs(x_adv - x).max() <= epsilon + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x_start).max() <= 1.25 * epsilon + 1e-6


def test_fast_at_without_random_start_is_fgsm():
    rng = np.random.default_rng(8)
    weights, bias = rng.normal(size=(6, 4)), rng.normal(size=4) * 0.1
    x = rng.uniform(0.0, 1.0, size=(16, 6)).astype("float32")
    y = rng.integers(0, 4, size=16)
    epsilon = 0.1
    model = kr.models.FastAT(linear_classifier(weights, bias), epsilon=epsilon)
    attack = kr.attacks.FGSM.from_config(
        {**model.attack.get_config(), "random_start": "none"}
    )
    x_adv = to_numpy(attack(model.classifier, x, y))
    expected = np_fgsm_ce(weights, bias, x, x, y, epsilon, 1.25 * epsilon)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)


# ---- one training step -------------------------------------------------------


def np_pgd_se(weights, bias, x, x_start, steps, epsilon, step):
    """L-inf PGD on sum ||p(x') - p(x)||^2 (linear model) from `x_start`."""
    natural = np_softmax(x @ weights + bias)
    x_adv = x_start.copy()
    for _ in range(steps):
        probs = np_softmax(x_adv @ weights + bias)
        v = 2.0 * (probs - natural)
        logit_gradient = probs * (v - (probs * v).sum(-1, keepdims=True))
        x_adv = x_adv + step * np.sign(logit_gradient @ weights.T)
        x_adv = np.clip(np.clip(x_adv, x - epsilon, x + epsilon), 0.0, 1.0)
    return x_adv


@pytest.mark.parametrize(
    "options, weighted",
    [
        ({}, False),
        (
            {
                "beta": 4.0,
                "distance": "sqrt_js",
                "clip_value": 1e-3,
                "label_smoothing": 0.1,
            },
            True,
        ),
        ({"distance": "kl", "beta": 1.0}, False),
    ],
)
def test_score_one_step_matches_hand_computed_update(options, weighted):
    rng = np.random.default_rng(3)
    weights, bias = rng.normal(size=(4, 3)), rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    sample_weight = rng.uniform(0.5, 1.5, size=8) if weighted else None
    epsilon, step, steps, learning_rate = 0.1, 0.04, 3, 0.5

    # SCORE's own attack (SE loss, uniform start; the start is reproduced
    # from the seed). From x itself the SE gradient is 0: no deterministic
    # start would test anything.
    x_start = seeded_uniform_start(x, epsilon, seed=3)
    x_adv = np_pgd_se(weights, bias, x.astype("float64"), x_start, steps, epsilon, step)
    parameters = [weights.copy(), bias.copy()]

    def loss():
        w, b = parameters
        return np_score(y, x @ w + b, x_adv @ w + b, w=sample_weight, **options)

    grad_w, grad_b = numeric_gradient(loss, parameters)
    classifier = linear_classifier(weights, bias)
    model = kr.models.SCORE(
        classifier, epsilon=epsilon, step_size=step, steps=steps, seed=3, **options
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    history = model.fit(
        x,
        y,
        sample_weight=None
        if sample_weight is None
        else sample_weight.astype("float32"),
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    new_w, new_b = classifier.get_weights()
    np.testing.assert_allclose(new_w, weights - learning_rate * grad_w, atol=2e-5)
    np.testing.assert_allclose(new_b, bias - learning_rate * grad_b, atol=2e-5)
    np.testing.assert_allclose(history.history["loss"][0], loss(), rtol=1e-5)


@pytest.mark.parametrize("method", ["SCORE", "FastAT"])
def test_compiled_fit_with_batchnorm(small, method):
    x, y = small
    kwargs = {"steps": 2, "distance": "sqrt_js"} if method == "SCORE" else {}
    model = bn_model(method, **kwargs)
    model.compile(optimizer="adam", metrics=["accuracy"], jit_compile=FIT_JIT_COMPILE)
    history = model.fit(
        x, y, batch_size=32, epochs=1, validation_data=(x[:32], y[:32]), verbose=0
    )
    assert {"loss", "accuracy", "adv_accuracy", "val_adv_accuracy"} <= set(
        history.history
    )
    assert np.all(np.isfinite([v[0] for v in history.history.values()]))


# ---- saving ------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, kwargs",
    [
        (
            "SCORE",
            {
                "beta": 4.0,
                "distance": "l1.5",
                "clip_value": 0.01,
                "label_smoothing": 0.1,
                "steps": 2,
                "attack_training_mode": False,
            },
        ),
        ("FastAT", {"epsilon": 0.1, "norm": "l2"}),
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
        to_numpy(restored.predict(xt[:64], verbose=0)),
        to_numpy(model.predict(xt[:64], verbose=0)),
    )
    config, restored_config = model.get_config(), restored.get_config()
    for key in ("classifier", "name"):
        config.pop(key), restored_config.pop(key)
    assert restored_config == config
    assert type(restored.attack) is type(model.attack)
    if method == "FastAT":
        assert restored.step_size == pytest.approx(0.125)
        assert restored.steps == 1
    else:
        assert (restored.distance, restored.clip_value) == ("l1.5", 0.01)
    assert int(to_numpy(restored.optimizer.iterations)) == 2
    history = restored.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# ---- digits ------------------------------------------------------------------

# A 10-epoch budget for every run here (CPU); the standard baseline is trained
# once per process and shared by both tests.
DIGITS_EPOCHS = 10
DIGITS_RUNS = {
    "SCORE": {"steps": 5},
    "FastAT": {"steps": 1, "step_size": None},  # None: FastAT's 1.25 * epsilon
}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["SCORE", "FastAT"])
def test_beats_standard_training_on_digits(digits, method):
    standard_clean, standard_robust = clean_and_robust_accuracy(
        train_on_digits("standard", digits, epochs=DIGITS_EPOCHS)[0], digits
    )
    net, history = train_on_digits(
        method, digits, epochs=DIGITS_EPOCHS, **DIGITS_RUNS[method]
    )
    clean, robust = clean_and_robust_accuracy(net, digits)
    print(
        f"\n[{BACKEND}] {method} (eps {DIGITS_EPSILON}, {DIGITS_EPOCHS} epochs): "
        f"clean {clean:.3f} robust {robust:.3f} | standard: clean "
        f"{standard_clean:.3f} robust {standard_robust:.3f}"
    )
    assert np.all(np.isfinite(history["loss"]))
    assert standard_clean > 0.9
    assert clean > 0.85
    assert robust > standard_robust + 0.2
