"""PGD and FGSM: threat-model invariants, strength, closed forms, seeds, errors."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

LOSSES = ["ce", "cw", "kl", "se", "dlr"]


@pytest.fixture
def batch(digits):
    (x, y), _ = digits
    return x[:64], y[:64]


@pytest.fixture
def cnn():
    model = tiny_cnn()
    model.build((None, 8, 8, 1))
    return model


def mean_ce(model, x, y):
    return float(np.mean(to_numpy(kr.losses.cross_entropy(y, model(x)))))


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", LOSSES)
def test_stays_in_epsilon_ball_and_clip_range(cnn, batch, norm, loss):
    x, y = batch
    epsilon = 0.2 if norm == "linf" else 1.0
    attack = kr.attacks.PGD(epsilon, steps=5, norm=norm, loss=loss, seed=0)
    x_adv = to_numpy(attack(cnn, x, y))
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= epsilon + 1e-5
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert size.mean() > 0.1 * epsilon  # it actually moved


@pytest.mark.parametrize("random_start", ["uniform", "normal", "none"])
def test_random_starts_respect_ball(cnn, batch, random_start):
    x, y = batch
    attack = kr.attacks.PGD(0.1, steps=2, random_start=random_start, seed=0)
    x_adv = to_numpy(attack(cnn, x, y))
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_uniform_start_is_uniform_in_the_ball(norm):
    """P(||delta|| <= t epsilon) = t^d for a point uniform in a d-dim ball.

    d counts the coordinates of one sample (2 here), not of the batch: with
    the batch counted, every start sat on the sphere.
    """
    from scipy import stats

    x = np.full((2000, 2), 0.5, "float32")  # the box never binds at 0.1
    generator = keras.random.SeedGenerator(0)
    starts = kr.attacks.norms.random_starts(
        x, 1, "uniform", 0.1, norm, 0.0, 1.0, lambda _: generator
    )
    delta = to_numpy(starts[0]) - x
    order = 1 if norm == "l1" else 2
    radius = np.linalg.norm(delta, ord=order, axis=1) / 0.1
    assert radius.max() <= 1.0 + 1e-5
    assert stats.kstest(radius, lambda t: np.clip(t, 0, 1) ** 2).pvalue > 1e-3


def test_custom_clip_range(cnn, batch):
    x, y = batch
    x = x * 2.0 - 1.0  # images in [-1, 1]
    attack = kr.attacks.PGD(0.3, steps=3, clip_min=-1.0, clip_max=1.0, seed=0)
    x_adv = to_numpy(attack(cnn, x, y))
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    assert x_adv.min() < 0.0


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd20_stronger_than_fgsm(cnn, batch, loss):
    x, y = batch
    objective = kr.attacks.objectives.objective_fn(loss, False, y)
    fgsm = kr.attacks.FGSM(0.2, loss=loss)
    pgd = kr.attacks.PGD(0.2, step_size=0.02, steps=20, loss=loss, random_start="none")
    value_fgsm = float(np.mean(to_numpy(objective(cnn(fgsm(cnn, x, y))))))
    value_pgd = float(np.mean(to_numpy(objective(cnn(pgd(cnn, x, y))))))
    value_clean = float(np.mean(to_numpy(objective(cnn(x)))))
    assert value_pgd > value_fgsm > value_clean


def test_targeted_raises_target_logit(cnn, batch):
    x, y = batch
    target = (y + 3) % 10
    attack = kr.attacks.PGD(0.3, steps=20, step_size=0.03, targeted=True, seed=0)
    x_adv = attack(cnn, x, target)
    rows = np.arange(len(x))
    before = to_numpy(cnn(x))
    after = to_numpy(cnn(x_adv))
    gain = after[rows, target] - before[rows, target]
    assert np.mean(gain > 0) > 0.9
    margin_before = before[rows, target] - before.max(1)
    margin_after = after[rows, target] - after.max(1)
    assert margin_after.mean() > margin_before.mean()


@pytest.mark.parametrize("label", [0, 1])
def test_linf_pgd_on_linear_model_is_closed_form(label):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 2))
    model = linear_classifier(weights, np.zeros(2))
    x = rng.uniform(0.3, 0.7, size=(20, 6)).astype("float32")
    x[:, 0] = 0.02  # one coordinate near the box edge: clipping must apply
    y = np.full(20, label)
    attack = kr.attacks.PGD(0.1, step_size=0.03, steps=10, random_start="none")
    x_adv = to_numpy(attack(model, x, y))
    # CE ascent for class `label` moves along sign(w_other - w_label).
    direction = np.sign(weights[:, 1 - label] - weights[:, label])
    expected = np.clip(x + 0.1 * direction, 0.0, 1.0)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)


def test_l2_pgd_on_linear_model_is_closed_form():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(6, 2))
    model = linear_classifier(weights, np.zeros(2))
    x = rng.uniform(0.4, 0.6, size=(10, 6)).astype("float32")
    y = np.zeros(10, dtype="int32")
    attack = kr.attacks.PGD(
        0.2, step_size=0.05, steps=10, norm="l2", random_start="none"
    )
    x_adv = to_numpy(attack(model, x, y))
    w = weights[:, 1] - weights[:, 0]
    expected = x + 0.2 * w / np.linalg.norm(w)
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)


def test_same_seed_same_result_eager_and_compiled(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.2, steps=5, restarts=2)
    eager = to_numpy(attack(cnn, x, y, seed=7))
    again = to_numpy(attack(cnn, x, y, seed=7))
    other = to_numpy(attack(cnn, x, y, seed=8))
    np.testing.assert_array_equal(eager, again)
    assert np.abs(eager - other).max() > 0.01
    # jax.jit, or a TensorFlow graph: the same random draws as eager.
    compiled_attack = kr.backend.compile_function(
        lambda a, b: attack(cnn, a, b, seed=7), jit_compile=False
    )
    compiled = to_numpy(compiled_attack(keras.ops.convert_to_tensor(x), y))
    np.testing.assert_allclose(eager, compiled, atol=1e-5)


def test_deterministic_attack_identical_under_xla(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.2, steps=5, random_start="none", loss="cw")
    eager = to_numpy(attack(cnn, x, y))
    xla = kr.backend.compile_function(lambda a, b: attack(cnn, a, b), jit_compile=True)
    np.testing.assert_allclose(
        eager, to_numpy(xla(keras.ops.convert_to_tensor(x), y)), atol=1e-5
    )


def test_seed_generator_advances(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.2, steps=1, seed=3)
    first = to_numpy(attack(cnn, x, y))
    second = to_numpy(attack(cnn, x, y))
    assert np.abs(first - second).max() > 0.01
    replay = to_numpy(kr.attacks.PGD(0.2, steps=1, seed=3)(cnn, x, y))
    np.testing.assert_array_equal(first, replay)


def test_restarts_keep_the_successful_restart(cnn, batch):
    x, y = batch
    single = kr.attacks.PGD(0.1, steps=3, random_start="none")
    repeated = kr.attacks.PGD(0.1, steps=3, random_start="none", restarts=3)
    np.testing.assert_allclose(
        to_numpy(single(cnn, x, y)), to_numpy(repeated(cnn, x, y)), atol=1e-6
    )
    # With random restarts, every sample that any single restart fools stays fooled.
    restarts = 4
    attack = kr.attacks.PGD(0.12, steps=3, restarts=restarts, seed=0)
    fooled_best = to_numpy(cnn(attack(cnn, x, y))).argmax(1) != y
    fooled_any = np.zeros(len(x), bool)
    for seed in range(6):
        one = kr.attacks.PGD(0.12, steps=3, seed=seed)
        fooled_any |= to_numpy(cnn(one(cnn, x, y))).argmax(1) != y
    assert fooled_best.mean() >= 0.8 * fooled_any.mean()
    assert fooled_best.mean() >= (to_numpy(cnn(x)).argmax(1) != y).mean()


def test_attack_accepts_one_hot_labels_and_callables(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.2, steps=3, random_start="none")
    from_int = to_numpy(attack(cnn, x, y))
    from_one_hot = to_numpy(attack(cnn, x, np.eye(10, dtype="float32")[y]))
    from_callable = to_numpy(attack(lambda images: cnn(images), x, y))
    np.testing.assert_allclose(from_int, from_one_hot, atol=1e-6)
    np.testing.assert_allclose(from_int, from_callable, atol=1e-6)


def test_every_default_evaluation_runs_the_same_pgd20():
    from keras_robust.callbacks.common import default_attack
    from keras_robust.cli.evaluate import evaluation_attacks

    model = kr.models.TRADES(tiny_cnn(), epsilon=0.1, norm="l2")
    expected = dict(
        epsilon=0.1,
        step_size=0.025,
        steps=20,
        norm="l2",
        loss="ce",
        targeted=False,
        random_start="uniform",
        restarts=1,
        clip_min=0.0,
        clip_max=1.0,
    )
    [cli_attack] = evaluation_attacks("pgd20", 0.1, 0).values()
    for attack, norm in (
        (model.eval_attack, "l2"),
        (default_attack(model, None, "a callback"), "l2"),
        (cli_attack, "linf"),  # the CLI's threat model is L-inf
    ):
        config = attack.get_config()
        config.pop("seed")
        assert type(attack) is kr.attacks.PGD
        assert config == {**expected, "norm": norm}


def test_serialization_round_trip():
    attack = kr.attacks.PGD(
        0.1, step_size=0.01, steps=7, norm="l2", loss="cw", targeted=True, restarts=2
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(attack)
    )
    assert isinstance(restored, kr.attacks.PGD)
    assert restored.get_config() == attack.get_config()
    fgsm = kr.attacks.FGSM(0.1, random_start="uniform", step_size=0.125)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(fgsm)
    )
    assert isinstance(restored, kr.attacks.FGSM)
    assert restored.get_config() == fgsm.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"epsilon": -0.1}, ValueError, "epsilon"),
        ({"epsilon": "big"}, TypeError, "epsilon"),
        ({"epsilon": 0.1, "step_size": 0.0}, ValueError, "step_size"),
        ({"epsilon": 0.1, "steps": 0}, ValueError, "steps"),
        ({"epsilon": 0.1, "steps": 2.5}, TypeError, "steps"),
        ({"epsilon": 0.1, "norm": "l1"}, ValueError, "norm.*PGD has no .l1. form"),
        ({"epsilon": 0.1, "loss": "hinge"}, ValueError, "loss"),
        ({"epsilon": 0.1, "loss": "kl", "targeted": True}, ValueError, "loss"),
        ({"epsilon": 0.1, "random_start": "gauss"}, ValueError, "random_start"),
        ({"epsilon": 0.1, "restarts": 0}, ValueError, "restarts"),
        ({"epsilon": 0.1, "clip_min": 1.0, "clip_max": 0.0}, ValueError, "clip_min"),
        ({"epsilon": 0.1, "seed": 1.5}, TypeError, "seed"),
        ({"epsilon": 0.1, "seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.attacks.PGD(**kwargs)


def test_fgsm_is_one_step():
    with pytest.raises(ValueError, match="steps"):
        kr.attacks.FGSM(0.1, steps=5)
    with pytest.raises(ValueError, match="restarts"):
        kr.attacks.FGSM(0.1, restarts=2)
    with pytest.raises(TypeError, match="unexpected"):
        kr.attacks.FGSM(0.1, momentum=0.9)


def test_dlr_needs_three_classes():
    rng = np.random.default_rng(0)
    model = linear_classifier(rng.normal(size=(4, 2)), np.zeros(2))
    x = rng.uniform(size=(5, 4)).astype("float32")
    with pytest.raises(ValueError, match="3 classes"):
        kr.attacks.PGD(0.1, loss="dlr")(model, x, np.zeros(5, "int32"))


def test_norm_aliases():
    assert kr.attacks.PGD(0.1, norm=np.inf).norm == "linf"
    assert kr.attacks.PGD(0.1, norm=2).norm == "l2"


def test_inputs_outside_clip_range_are_rejected(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.1, steps=1)
    with pytest.raises(ValueError, match="clip_min"):
        attack(cnn, x * 255.0, y)


def test_integer_images_are_rejected(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.1, steps=1)
    with pytest.raises(TypeError, match="astype"):
        attack(cnn, (x * 255).astype("uint8"), y)


def test_nan_images_are_rejected(cnn, batch):
    x, y = batch
    x = x.copy()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kr.attacks.PGD(0.1, steps=1)(cnn, x, y)


def test_labels_out_of_range_are_rejected(cnn, batch):
    x, y = batch
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        kr.attacks.PGD(0.1, steps=1)(cnn, x, y + 5)


def test_non_logit_outputs_are_rejected(batch):
    x, y = batch
    flat = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    scalar = keras.Sequential([flat, keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="logits of shape"):
        kr.attacks.PGD(0.1, steps=1)(scalar, x, y)
    with pytest.raises(ValueError, match="logits of shape"):
        kr.attacks.PGD(0.1, steps=1)(keras.layers.Identity(), x, y)


def test_probability_outputs_warn(batch):
    x, y = batch
    model = tiny_cnn()
    softmax_model = keras.Sequential([model, keras.layers.Softmax()])
    with pytest.warns(UserWarning, match="probabilities"):
        kr.attacks.PGD(0.1, steps=1)(softmax_model, x, y)


def test_repeated_calls_follow_weight_updates(cnn, batch):
    x, y = batch
    attack = kr.attacks.PGD(0.2, steps=3, random_start="none")
    first = to_numpy(attack(cnn, x, y))
    np.testing.assert_allclose(to_numpy(attack(cnn, x, y)), first, atol=1e-6)
    cnn.set_weights([w * 1.5 for w in cnn.get_weights()])
    fresh = to_numpy(kr.attacks.PGD(0.2, steps=3, random_start="none")(cnn, x, y))
    after = to_numpy(attack(cnn, x, y))
    assert np.abs(fresh - first).max() > 0.01
    np.testing.assert_allclose(after, fresh, atol=1e-6)
