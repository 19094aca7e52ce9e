"""kr.models.DyART: search and filter, objective, burn-in, logs, saving, digits."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.conftest import BACKEND
from tests.digits_training import clean_and_robust_accuracy
from tests.digits_training import train_on_digits
from tests.helpers import linear_classifier
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy
from tests.oracles import np_ce

DIM = 6


def epoch_of(model):
    return int(to_numpy(keras.ops.add(model.current_epoch, 0.0)))


def linear_problem(seed, size=16, classes=2):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(DIM, classes)) * 3.0
    model = linear_classifier(weights, np.zeros(classes))
    x = rng.uniform(0.3, 0.7, size=(size, DIM)).astype("float32")
    logits = x @ weights
    return model, weights, x, logits


def test_boundary_points_on_a_linear_model_are_the_closest_ones():
    classifier, weights, x, logits = linear_problem(0)
    y = logits.argmax(1)
    y[:4] = 1 - y[:4]  # misclassified: never searched
    model = kr.models.DyART(classifier, epsilon=0.05, r0=0.1, alpha=3.0, seed=0)
    data = model.boundary_points(
        lambda z: classifier(z, training=False), x, y, start=keras.ops.array(x)
    )
    data = {k: to_numpy(v) for k, v in data.items()}
    sign = np.where(y == 0, 1.0, -1.0)[:, None]
    w = sign * (weights[:, 0] - weights[:, 1])[None, :]
    g = np.sum(w * x, axis=1)
    closest = x - (g / np.abs(w).sum(1))[:, None] * np.sign(w)
    radius = np.abs(closest - x).max(1)

    kept = data["kept"]
    assert not kept[:4].any()
    assert kept[4:].all()  # on a linear margin every found point is kept
    np.testing.assert_array_equal(data["x_boundary"][:4], x[:4])
    np.testing.assert_allclose(data["x_boundary"][4:], closest[4:], atol=1e-3)
    np.testing.assert_allclose(data["radius"][4:], radius[4:], rtol=0.02)
    assert np.all(data["radius"][:4] == 0) and np.all(data["margin_weights"][:4] == 0)
    # w = h'(R) / ||grad phi||_1 with grad phi = w (the soft margin of two
    # classes is the linear margin).
    expected = np.where(
        data["radius"] < 0.1, np.exp(-3.0 * data["radius"]), 0.0
    ) / np.abs(w).sum(1)
    np.testing.assert_allclose(data["margin_weights"][4:], expected[4:], rtol=1e-4)


def test_quality_filter_rejects_far_from_boundary_points():
    classifier, _, x, logits = linear_problem(1)
    y = logits.argmax(1)
    # One search step from far away: crossings overshoot far past phi = 0.
    model = kr.models.DyART(
        classifier,
        epsilon=0.05,
        temperature=0.05,  # a very soft margin: phi(x^) is far below 0
        search_steps=1,
        seed=0,
    )
    data = model.boundary_points(
        lambda z: classifier(z, training=False), x, y, start=keras.ops.array(x)
    )
    phi = to_numpy(kr.losses.soft_margin(classifier(data["x_boundary"]), y, 0.05))
    kept = to_numpy(data["kept"])
    assert np.all((phi[kept] > -0.3) & (phi[kept] < 0))


def fit_one_step(model, x, y, **kwargs):
    model.compile(optimizer=keras.optimizers.SGD(0.0), **kwargs)
    return model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)


def test_all_wrong_batch_trains_on_cross_entropy_alone():
    classifier, _, x, logits = linear_problem(2, classes=3)
    y = logits.argmin(1)  # every sample misclassified: phi(x) < 0
    model = kr.models.DyART(classifier, epsilon=0.05, search_steps=3, seed=0)
    history = fit_one_step(model, x, y).history
    assert np.isfinite(history["loss"][0])
    np.testing.assert_allclose(
        history["loss"][0], np_ce(y, logits.astype("float64")).mean(), rtol=1e-5
    )
    assert history["kept_fraction"][0] == 0.0
    assert history["mean_margin"][0] == 0.0


def test_step_loss_is_the_dyart_objective():
    classifier, weights, x, logits = linear_problem(3)
    y = logits.argmax(1)
    model = kr.models.DyART(classifier, epsilon=0.05, r0=0.5, lam=10.0, seed=0)
    history = fit_one_step(model, x, y).history
    # The same search (same seed) outside fit gives the step's boundary points.
    replay = kr.models.DyART(
        linear_classifier(weights, np.zeros(2)), epsilon=0.05, r0=0.5, seed=0
    )
    data = replay.generate_adversarial(keras.ops.array(x), y, training=True)
    data = {k: to_numpy(v) for k, v in data.items()}
    assert history["kept_fraction"][0] == pytest.approx(data["kept"].mean())
    assert data["kept"].mean() > 0.5
    boundary_logits = data["x_boundary"] @ weights
    phi = to_numpy(kr.losses.soft_margin(boundary_logits, y, 5.0))
    expected = np.mean(np_ce(y, logits) - 10.0 * data["margin_weights"] * phi)
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-4)
    np.testing.assert_allclose(
        history["mean_margin"][0],
        data["radius"][data["kept"]].mean(),
        rtol=1e-4,
    )


@pytest.mark.parametrize(
    "jit_compile", [None, True] if BACKEND == "tensorflow" else [None]
)
def test_burn_in_then_boundary_term_logs_and_evaluate(digits, jit_compile):
    (x, y), (xt, yt) = digits
    model = kr.models.DyART(
        tiny_cnn(batch_norm=True),
        epsilon=0.2,
        r0=0.4,
        lam=10.0,
        search_steps=3,
        burn_in_epochs=2,
        seed=0,
    )
    kwargs = {} if jit_compile is None else {"jit_compile": jit_compile}
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"], **kwargs)
    history = model.fit(
        x[:512],
        y[:512],
        batch_size=64,
        epochs=4,
        validation_data=(xt[:128], yt[:128]),
        verbose=0,
    ).history
    for key in ("loss", "accuracy", "adv_accuracy", "kept_fraction", "mean_margin"):
        assert key in history and "val_" + key in history
        assert np.all(np.isfinite(history[key]))
    assert history["kept_fraction"][:2] == [0.0, 0.0]  # burn-in: no search
    assert history["kept_fraction"][2] > 0.1 and history["kept_fraction"][3] > 0.1
    assert history["val_kept_fraction"][1] > 0.1  # evaluate always searches
    assert history["mean_margin"][3] > 0.0
    assert epoch_of(model) == 3
    # Resuming continues the epoch count.
    model.fit(x[:64], y[:64], batch_size=64, initial_epoch=4, epochs=5, verbose=0)
    assert epoch_of(model) == 4
    logs = model.evaluate(xt[:64], yt[:64], verbose=0, return_dict=True)
    assert 0.0 <= logs["kept_fraction"] <= 1.0 and logs["mean_margin"] >= 0.0


def test_save_load_round_trip(tmp_path, digits):
    (x, y), (xt, _) = digits
    model = kr.models.DyART(
        tiny_cnn(batch_norm=True),
        epsilon=0.1,
        temperature=3.0,
        r0=0.3,
        alpha=2.0,
        lam=50.0,
        search_steps=4,
        burn_in_epochs=1,
        seed=5,
    )
    model.compile(optimizer=keras.optimizers.Adam(global_clipnorm=0.1))
    model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0)
    path = tmp_path / "dyart.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is kr.models.DyART
    config, restored_config = model.get_config(), restored.get_config()
    for key in set(config) - {"classifier"}:  # layer names may be renumbered
        assert restored_config[key] == config[key], key
    for key in ("temperature", "r0", "alpha", "lam", "burn_in_epochs", "epsilon"):
        assert getattr(restored, key) == getattr(model, key)
    assert isinstance(restored.attack, kr.attacks.BoundarySearch)
    assert restored.search_steps == 4
    assert epoch_of(restored) == 1
    np.testing.assert_array_equal(
        to_numpy(restored.predict(xt, verbose=0)),
        to_numpy(model.predict(xt, verbose=0)),
    )
    history = restored.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"r0": 0.0}, ValueError, "r0"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"lam": -1.0}, ValueError, "lam"),
        ({"lam": "big"}, TypeError, "lam"),
        ({"search_steps": 0}, ValueError, "search_steps"),
        ({"burn_in_epochs": -1}, ValueError, "burn_in_epochs"),
        ({"burn_in_epochs": 1.5}, TypeError, "burn_in_epochs"),
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"norm": "l2"}, ValueError, "norm"),
        ({"attack": kr.attacks.PGD(0.1)}, TypeError, "BoundarySearch"),
        (
            {"attack": kr.attacks.BoundarySearch(0.1, steps=5), "search_steps": 7},
            ValueError,
            "search_steps",
        ),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.models.DyART(tiny_cnn(), **kwargs)


def test_custom_search_and_defaults():
    search = kr.attacks.BoundarySearch(0.1, steps=5, refine_steps=4)
    model = kr.models.DyART(tiny_cnn(), attack=search)
    assert model.attack is search and model.search_steps == 5
    default = kr.models.DyART(tiny_cnn())
    assert default.search_steps == 20 and default.attack.epsilon == pytest.approx(
        8 / 255
    )
    assert default.attack.temperature == 5.0
    assert default.eval_attack.steps == 20  # PGD-20 at epsilon for validation


@pytest.mark.slow
def test_dyart_beats_standard_training_on_digits(digits):
    standard_clean, standard_robust = clean_and_robust_accuracy(
        train_on_digits("standard", digits)[0], digits
    )
    net, history = train_on_digits(
        "DyART", digits, epochs=10, search_steps=5, r0=0.4, lam=100.0
    )
    clean, robust = clean_and_robust_accuracy(net, digits)
    print(
        f"\nDyART: clean {clean:.3f} robust {robust:.3f} | "
        f"standard: clean {standard_clean:.3f} robust {standard_robust:.3f} | "
        f"kept {history['kept_fraction'][-1]:.2f} "
        f"margin {history['mean_margin'][-1]:.3f}"
    )
    assert standard_clean > 0.9
    assert clean > 0.9
    assert robust > standard_robust + 0.25
