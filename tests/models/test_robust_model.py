"""RobustModel through `fit`/`evaluate`: inputs, compile modes, logs, BatchNorm, errors."""

import collections

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.conftest import BACKEND
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

EPSILON = 0.2
LOG_KEYS = {"loss", "accuracy", "adv_accuracy", "energy_natural", "energy_adversarial"}


@pytest.fixture
def small(digits):
    (x, y), (xt, yt) = digits
    return x[:128], y[:128], xt[:64], yt[:64]


def make_model(method="TRADES", batch_norm=False, net=None, **kwargs):
    if net is None:
        net = tiny_cnn(batch_norm=batch_norm)
    kwargs.setdefault("steps", 3)
    model = getattr(kr.models, method)(
        net, epsilon=EPSILON, step_size=EPSILON / 4, seed=0, **kwargs
    )
    return model


METHODS = ["AT", "TRADES", "MART", "WEAT"]
# JAX always compiles with XLA ("auto" is True there). TensorFlow's "auto" is
# a graph without XLA on CPU; XLA is checked on one method per attack family
# (XLA compilation of a step with an attack loop is slow on CPU). PyTorch's
# "auto" is eager; `torch.compile` (minutes per model on CPU) is checked on AT.
COMPILE_MODES = {
    "tensorflow": [(m, "auto") for m in METHODS] + [("AT", True), ("WEAT", True)],
    "jax": [(m, True) for m in METHODS],
    "torch": [(m, "auto") for m in METHODS] + [("AT", True)],
}[BACKEND]


@pytest.fixture
def torch_compile_without_codegen(monkeypatch):
    """`torch.compile` traced by Dynamo and AOTAutograd, run without Inductor.

    Dynamo and AOTAutograd are where our step meets `torch.compile` (graph
    breaks, guards, the traced backward); Inductor then generates C++ for
    each of the step's graphs, which took 170-220 s of this one test on two
    CPU cores and tests nothing of ours. Keras calls `torch.compile(fn)`.

    Dynamo then still traced the Python of every Keras layer call in each of
    the step's graphs (166 s for one batch of the tiny CNN; a linear network
    75 s), so the test that uses this fixture trains a linear network.
    """
    import torch

    compile_ = torch.compile
    monkeypatch.setattr(
        torch,
        "compile",
        lambda fn=None, **kwargs: compile_(fn, **{"backend": "aot_eager", **kwargs}),
    )


@pytest.mark.parametrize("method, jit_compile", COMPILE_MODES)
def test_fit_and_evaluate_log_all_keys(small, method, jit_compile, request):
    net = None
    if BACKEND == "torch" and jit_compile is True:
        request.getfixturevalue("torch_compile_without_codegen")
        inputs = keras.Input((8, 8, 1))
        net = keras.Model(
            inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
        )
    x, y, xt, yt = small
    # A 2-step evaluation attack: the logs are the same keys as with PGD-20,
    # and `torch.compile` unrolls every step of the attack loop it traces.
    eval_attack = kr.attacks.PGD(EPSILON, step_size=EPSILON / 4, steps=2, seed=0)
    model = make_model(method, net=net, eval_attack=eval_attack)
    model.compile(optimizer="adam", metrics=["accuracy"], jit_compile=jit_compile)
    history = model.fit(
        x, y, batch_size=32, epochs=1, validation_data=(xt, yt), verbose=0
    )
    assert LOG_KEYS | {f"val_{k}" for k in LOG_KEYS} <= set(history.history)
    if method == "WEAT":
        weight = history.history["weat_weight"][0]
        assert 0.0 < weight <= 1 / np.log(2) + 1e-6
    values = np.array([v[0] for v in history.history.values()])
    assert np.all(np.isfinite(values))
    assert 0.0 <= history.history["adv_accuracy"][0] <= 1.0


def test_steps_do_not_check_their_batch_again(small, monkeypatch):
    """Batches are checked before the run; the steps' attacks and losses
    then never read a batch back to the host (PyTorch's eager steps too,
    where each check cost a host read and one more forward pass)."""
    from keras_robust.utils import validation

    x, y, _, _ = small
    calls = collections.Counter()
    for name in ("check_images", "check_logits", "check_labels"):
        check = getattr(validation, name)

        def counted(*args, _name=name, _check=check, **kwargs):
            calls[_name] += 1
            return _check(*args, **kwargs)

        monkeypatch.setattr(validation, name, counted)
    model = make_model("TRADES")
    model.compile(optimizer="adam")
    checks_per_fit = []
    for batches in (2, 8):
        calls.clear()
        model.fit(x[: 16 * batches], y[: 16 * batches], batch_size=16, verbose=0)
        checks_per_fit.append(dict(calls))
    assert checks_per_fit[0] == checks_per_fit[1]
    assert checks_per_fit[0]["check_logits"] == 1


def test_evaluate_logs_match_direct_computation(small):
    _, _, xt, yt = small
    model = make_model("TRADES")
    model.compile(optimizer="adam", metrics=["accuracy"])
    logs = model.evaluate(xt, yt, batch_size=64, return_dict=True, verbose=0)
    logits = model.classifier(xt, training=False)
    np.testing.assert_allclose(
        logs["energy_natural"],
        np.mean(to_numpy(kr.energy.marginal_energy(logits))),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        logs["accuracy"], np.mean(to_numpy(logits).argmax(1) == yt), atol=1e-6
    )
    assert logs["adv_accuracy"] <= logs["accuracy"] + 1e-6


def test_predict_and_call_are_the_classifier(small):
    _, _, xt, _ = small
    model = make_model("AT")
    np.testing.assert_allclose(
        to_numpy(model.predict(xt, verbose=0)),
        to_numpy(model.classifier(xt)),
        atol=1e-5,
    )


def test_tf_data_and_py_dataset_inputs(small):
    import tensorflow as tf

    x, y, xt, yt = small
    model = make_model("AT")
    model.compile(optimizer="adam", metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model.fit(dataset, epochs=1, validation_data=dataset.take(1), verbose=0)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            rows = slice(32 * index, 32 * (index + 1))
            return x[rows], y[rows]

    history = model.fit(Batches(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_one_hot_labels_and_sample_weights(small):
    x, y, _, _ = small
    one_hot = np.eye(10, dtype="float32")[y]
    model = make_model("MART")
    model.compile(optimizer="adam", metrics=["categorical_accuracy"])
    history = model.fit(
        x,
        one_hot,
        sample_weight=np.ones(len(x), "float32"),
        batch_size=32,
        epochs=1,
        verbose=0,
    )
    assert {"loss", "categorical_accuracy", "adv_accuracy"} <= set(history.history)
    # Zero weights on every sample give a zero objective (no regularizer here).
    model = make_model("TRADES")
    model.compile(optimizer="adam")
    history = model.fit(
        x, y, sample_weight=np.zeros(len(x), "float32"), batch_size=32, verbose=0
    )
    assert history.history["loss"][0] == pytest.approx(0.0, abs=1e-7)


def test_same_seed_same_training(small):
    x, y, _, _ = small
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(1)
        model = make_model("TRADES")
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        results.append(model.classifier.get_weights())
    for first, second in zip(*results):
        np.testing.assert_allclose(first, second, atol=1e-6)


@pytest.mark.parametrize("batch_statistics", [False, True])
def test_attack_never_updates_batchnorm_statistics(small, batch_statistics):
    x, y, _, _ = small
    model = make_model("AT", batch_norm=True, attack_training_mode=batch_statistics)
    model(x[:2])
    before = [to_numpy(v).copy() for v in model.classifier.non_trainable_variables]
    x_adv = model.generate_adversarial(x, y, training=True)
    after = [to_numpy(v) for v in model.classifier.non_trainable_variables]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)
    assert np.abs(to_numpy(x_adv) - x).max() > 0


def test_batch_statistics_mode_uses_batch_statistics(small):
    x, y, _, _ = small
    # Moving statistics far from the data: inference mode sees other activations.
    results = {}
    for mode in (False, True):
        keras.utils.set_random_seed(0)
        model = make_model("AT", batch_norm=True, attack_training_mode=mode)
        model(x[:2])
        for variable in model.classifier.non_trainable_variables:
            if "moving_mean" in variable.path:
                variable.assign(np.full(variable.shape, 5.0, "float32"))
        results[mode] = to_numpy(model.generate_adversarial(x, y, training=True))
    assert np.abs(results[True] - results[False]).max() > 0.01


def test_training_improves_adversarial_accuracy_logs(small):
    x, y, _, _ = small
    model = make_model("AT")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]


# ---- bad input ---------------------------------------------------------------


def test_missing_classifier():
    with pytest.raises(ValueError, match="classifier"):
        kr.models.TRADES()
    with pytest.raises(TypeError, match="classifier"):
        kr.models.AT("resnet")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"step_size": -1.0}, ValueError, "step_size"),
        ({"steps": 0}, ValueError, "steps"),
        ({"norm": "l0"}, ValueError, "norm"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"attack": "pgd"}, TypeError, "attack"),
        ({"eval_attack": object()}, TypeError, "eval_attack"),
        ({"seed": "abc"}, TypeError, "seed"),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.models.TRADES(tiny_cnn(), **kwargs)


def test_weat_variant_is_checked():
    with pytest.raises(ValueError, match="variant"):
        kr.models.WEAT(tiny_cnn(), variant="both")


def test_fit_before_compile(small):
    x, y, _, _ = small
    with pytest.raises(ValueError, match="compile"):
        make_model().fit(x, y, verbose=0)


def test_compile_with_a_loss_is_rejected():
    with pytest.raises(ValueError, match="loss"):
        make_model().compile(optimizer="adam", loss="sparse_categorical_crossentropy")


@pytest.mark.parametrize("kind", ["numpy", "tf.data"])
def test_inputs_outside_range_rejected_before_training(small, kind):
    x, y, _, _ = small
    model = make_model()
    model.compile(optimizer="adam")
    data = (x * 255.0, y)
    if kind == "tf.data":
        import tensorflow as tf

        data = (tf.data.Dataset.from_tensor_slices(data).batch(32), None)
    with pytest.raises(ValueError, match="clip_min"):
        model.fit(*data, verbose=0)


def test_integer_images_rejected(small):
    x, y, _, _ = small
    model = make_model()
    model.compile(optimizer="adam")
    with pytest.raises(TypeError, match="astype"):
        model.fit((x * 255).astype("uint8"), y, verbose=0)


def test_labels_out_of_range_rejected(small):
    x, y, xt, yt = small
    model = make_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="labels"):
        model.fit(x, y + 10, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(xt, yt - 1), verbose=0)


def test_classifier_without_logits_rejected(small):
    x, y, _, _ = small
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    model = kr.models.AT(keras.Sequential([net, keras.layers.Dense(1)]))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="logits"):
        model.fit(x, y, verbose=0)


def test_base_class_needs_a_method():
    with pytest.raises(NotImplementedError, match="build_attack"):
        kr.models.RobustModel(tiny_cnn())


def test_backend_is_supported():
    assert BACKEND in kr.backend.SUPPORTED_BACKENDS


def test_at_step_updates_batchnorm_once_on_x_adv(small):
    """Only the training pass on x* moves the moving statistics, once."""
    x, y, _, _ = small
    x, y = x[:32], y[:32]
    epsilon = 0.01
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model = kr.models.AT(classifier, epsilon=epsilon, step_size=epsilon / 4, steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    moving_mean = float(to_numpy(classifier.layers[0].moving_mean)[0])
    # E(x) is logged from the same BatchNorm mode as E(x*): batch statistics
    # (the weights did not move: learning rate 0).
    batch_mode = np.mean(
        to_numpy(kr.energy.marginal_energy(classifier(x, training=True)))
    )
    inference = np.mean(to_numpy(kr.energy.marginal_energy(classifier(x))))
    assert logs["energy_natural"][0] == pytest.approx(batch_mode, rel=1e-4)
    assert abs(batch_mode - inference) > 1e-3
    # One update: 0.1 * mean(x*), with |mean(x*) - mean(x)| <= epsilon. Two
    # updates (natural pass too) would give about 0.19 * mean(x).
    assert abs(moving_mean - 0.1 * x.mean()) <= 0.1 * epsilon + 1e-6
