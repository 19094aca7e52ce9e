"""FAB-style boundary search: closed forms, LP solutions, compiled runs, errors."""

import keras
import numpy as np
import pytest
from scipy.optimize import linprog

import keras_robust as kr
from keras_robust.attacks.boundary import hyperplane_step
from keras_robust.attacks.boundary import margin_and_gradient
from tests.conftest import BACKEND
from tests.helpers import linear_classifier
from tests.helpers import min_l1_distances
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

DIM = 6


def binary_problem(seed, size=16, low=0.3, high=0.7, scale=1.0):
    """A 2-class linear model and inputs it classifies correctly.

    With 2 classes the soft margin is exactly linear,
    g(x) = (W_y - W_o) . x + (b_y - b_o), for any temperature.
    """
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(DIM, 2)) * scale
    bias = rng.normal(size=2) * 0.05
    model = linear_classifier(weights, bias)
    x = rng.uniform(low, high, size=(size, DIM)).astype("float32")
    y = to_numpy(model(x)).argmax(1)
    sign = np.where(y == 0, 1.0, -1.0)[:, None]
    w = sign * (weights[:, 0] - weights[:, 1])[None, :]
    b = sign[:, 0] * (bias[0] - bias[1])
    return model, x, y, w, b


def linear_margin(model, y, temperature=5.0):
    return lambda z: kr.losses.soft_margin(model(z), y, temperature)


def lp_closest_linf(x, w, b, clip_min=0.0, clip_max=1.0):
    """min ||d||_inf s.t. w . (x + d) + b = 0, x + d in the box (an LP)."""
    d = len(x)
    cost = np.zeros(d + 1)
    cost[-1] = 1.0  # variables (d_1..d_n, t); minimise t
    a_ub = np.zeros((2 * d, d + 1))
    a_ub[:d, :d] = np.eye(d)
    a_ub[d:, :d] = -np.eye(d)
    a_ub[:, -1] = -1.0  # |d_j| <= t
    a_eq = np.concatenate([w, [0.0]])[None, :]
    bounds = [(clip_min - xj, clip_max - xj) for xj in x] + [(0, None)]
    result = linprog(
        cost,
        A_ub=a_ub,
        b_ub=np.zeros(2 * d),
        A_eq=a_eq,
        b_eq=[-(w @ x + b)],
        bounds=bounds,
        method="highs",
    )
    assert result.success
    return x + result.x[:d], result.x[-1]


def linf(a):
    return np.abs(a).reshape(len(a), -1).max(1)


@pytest.mark.parametrize("temperature", [5.0, None])
def test_linf_closed_form_inside_the_box(temperature):
    model, x, y, w, b = binary_problem(0)
    g = np.sum(w * x, axis=1) + b
    expected = x - (g / np.abs(w).sum(1))[:, None] * np.sign(w)
    distance = linf(expected - x)
    assert distance.max() < 0.2  # the box is never active
    margin = linear_margin(model, y, temperature)
    # FAB started at x: the overshoot leaves the best crossing slightly
    # beyond the boundary (about 0.5% farther), within 1e-3 here.
    x_hat, found = kr.attacks.boundary_search(margin, x, steps=20, init_radius=0.0)
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    assert np.all(to_numpy(margin(x_hat)) < 0)  # across, never before
    assert np.all(linf(x_hat - x) >= distance - 1e-6)
    np.testing.assert_allclose(linf(x_hat - x), distance, atol=1e-3)
    np.testing.assert_allclose(x_hat, expected, atol=1e-3)
    # A final bisection on [x, x^] lands on the exact point.
    x_hat, found = kr.attacks.boundary_search(
        margin, x, steps=20, init_radius=0.0, refine_steps=20
    )
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    assert np.all(to_numpy(margin(x_hat)) < 1e-6)  # on it, to float32 rounding
    np.testing.assert_allclose(linf(x_hat - x), distance, atol=1e-5)
    np.testing.assert_allclose(x_hat, expected, atol=1e-5)


def test_a_success_test_replaces_the_sign_of_the_margin():
    # margin_fn returns (g, crossed) with crossed = "g has fallen below half
    # its value at x". On a linear
    # margin the closest such point is half-way to the exact boundary point;
    # the search records points past that level and the bisection uses the
    # same test, so it lands on that level.
    model, x, y, w, b = binary_problem(0)
    g = np.sum(w * x, axis=1) + b
    closest = x - (g / np.abs(w).sum(1))[:, None] * np.sign(w)
    margin = linear_margin(model, y, None)
    half = keras.ops.convert_to_tensor(0.5 * g, "float32")

    def margin_and_crossed(z):
        value = margin(z)
        return value, value < half

    x_hat, found = kr.attacks.boundary_search(
        margin_and_crossed, x, steps=20, init_radius=0.0, refine_steps=20
    )
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    np.testing.assert_allclose(to_numpy(margin(x_hat)), 0.5 * g, atol=1e-5)
    np.testing.assert_allclose(x_hat, (x + closest) / 2, atol=1e-3)


@pytest.mark.parametrize(
    "norm, closest",
    [("linf", 1.2 / 8), ("l2", 1.2 / np.sqrt(14)), ("l1", 0.4)],
)
def test_a_matrix_of_margins_steps_onto_the_closest_linearised_boundary(norm, closest):
    # Two linear margins on 6 features at x = 0.5: g_a = 1 + 0.01 s(z - x),
    # g_b = 1.2 - c . (z - x), s the feature sum, c = (3, 1, ..., 1). g_a is
    # the smaller, but its boundary lies 100/6 away (L-inf), 100/sqrt(6) (L2)
    # or 100 (L1), out of the box; g_b's is 1.2 / ||c||_1 (L-inf),
    # 1.2 / ||c||_2 (L2) or 1.2 / ||c||_inf (L1: the first feature alone).
    # One step lands 5% beyond it.
    x = np.full((2, 6), 0.5, "float32")
    c = keras.ops.convert_to_tensor([3.0, 1, 1, 1, 1, 1])

    def margins(z):
        total = keras.ops.sum(z - 0.5, axis=1)
        weighted = keras.ops.sum((z - 0.5) * c, axis=1)
        return keras.ops.stack([1.0 + 0.01 * total, 1.2 - weighted], axis=1)

    x_hat, found = kr.attacks.boundary_search(
        margins, x, steps=1, norm=norm, init_radius=0.0
    )
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    delta = (x_hat - x).reshape(2, -1)
    size = {
        "linf": np.abs(delta).max(1),
        "l2": np.linalg.norm(delta, axis=1),
        "l1": np.abs(delta).sum(1),
    }[norm]
    np.testing.assert_allclose(size, 1.05 * closest, rtol=1e-5)
    if norm == "l1":
        np.testing.assert_allclose(delta[:, 1:], 0.0)


def test_linf_from_a_random_start():
    model, x, y, w, b = binary_problem(0, size=64)
    g = np.sum(w * x, axis=1) + b
    expected = x - (g / np.abs(w).sum(1))[:, None] * np.sign(w)
    distance = linf(expected - x)
    inside = distance < 0.28  # x lies in [0.3, 0.7]: the box is inactive
    margin = linear_margin(model, y)
    # The default: uniform start within init_radius / 2 = 4/255, 20 steps.
    x_hat, found = kr.attacks.boundary_search(margin, x, seed=0)
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    assert np.all(to_numpy(margin(x_hat)) < 0)
    assert np.all(linf(x_hat - x) >= distance - 1e-6)
    error = np.abs(x_hat - expected).max(1)[inside]
    assert error.max() < 2e-3 and np.median(error) < 1e-3
    # More steps and a final bisection: exact to 1e-4.
    x_hat, _ = kr.attacks.boundary_search(margin, x, steps=40, seed=0, refine_steps=20)
    np.testing.assert_allclose(to_numpy(x_hat)[inside], expected[inside], atol=1e-4)


def test_linf_with_active_box_matches_linear_program():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(DIM, 2))
    bias = np.array([1.0, 0.0])
    model = linear_classifier(weights, bias)
    w = weights[:, 0] - weights[:, 1]
    x = rng.uniform(0.3, 0.7, size=(200, DIM))
    # Class-0 samples move along -sign(w): put the first two coordinates
    # against the walls in that direction, so the box constraint binds.
    for j in (0, 1):
        x[:, j] = 0.004 if w[j] > 0 else 0.996
    g = x @ w + bias[0] - bias[1]
    x = x[g > 0.05][:12].astype("float32")
    assert len(x) == 12
    y = np.zeros(len(x), "int32")
    margin = linear_margin(model, y)
    fab, found = kr.attacks.boundary_search(margin, x, init_radius=0.0)
    refined, found_refined = kr.attacks.boundary_search(
        margin, x, init_radius=0.0, refine_steps=20
    )
    fab, refined = to_numpy(fab), to_numpy(refined)
    assert to_numpy(found).all() and to_numpy(found_refined).all()
    for i in range(len(x)):
        point, radius = lp_closest_linf(x[i].astype("float64"), w, bias[0] - bias[1])
        assert radius > 0.004 + 1e-3  # beyond the room left by the walls
        assert abs(np.abs(fab[i] - x[i]).max() - radius) < 1e-3
        np.testing.assert_allclose(fab[i], point, atol=1e-3)
        assert abs(np.abs(refined[i] - x[i]).max() - radius) < 1e-4
        np.testing.assert_allclose(refined[i], point, atol=1e-4)
    assert fab.min() >= 0.0 and fab.max() <= 1.0


def test_l2_closed_form_inside_the_box():
    model, x, y, w, b = binary_problem(2, size=256, scale=3.0)
    g = np.sum(w * x, axis=1) + b
    expected = x - (g / np.sum(w**2, axis=1))[:, None] * w
    # Samples whose box constraint stays inactive, overshoot included.
    overshot = x + 1.1 * (expected - x)
    inside = np.all((overshot > 0) & (overshot < 1), axis=1)
    x, y, expected = x[inside][:16], y[inside][:16], expected[inside][:16]
    assert len(x) == 16
    margin = linear_margin(model, y)
    x_hat, found = kr.attacks.boundary_search(margin, x, norm="l2", init_radius=0.0)
    x_hat = to_numpy(x_hat)
    assert to_numpy(found).all()
    assert np.all(to_numpy(margin(x_hat)) < 0)
    distance = np.linalg.norm(expected - x, axis=1)
    np.testing.assert_allclose(np.linalg.norm(x_hat - x, axis=1), distance, rtol=0.01)
    x_hat, _ = kr.attacks.boundary_search(
        margin, x, norm="l2", init_radius=0.0, refine_steps=20
    )
    np.testing.assert_allclose(to_numpy(x_hat), expected, atol=1e-5)


def test_hyperplane_step_is_the_exact_minimal_projection():
    rng = np.random.default_rng(3)
    batch, dim = 40, 9
    points = rng.uniform(0.0, 1.0, size=(batch, dim))
    points[:, :3] = rng.choice([0.0, 0.01, 0.99, 1.0], size=(batch, 3))
    w = rng.normal(size=(batch, dim))
    w[:, 4] = 0.0  # a coordinate the hyperplane does not depend on
    value = rng.normal(size=batch) * 0.5
    value[0] = 0.0  # already on the plane
    value[1] = 50.0  # out of the box's reach
    # Unreachable: every coordinate takes its full room towards the plane.
    full = np.where(-np.sign(w[1]) > 0, 1.0 - points[1], -points[1])

    def step_in(norm):
        """The step, after the checks every norm shares."""
        step = to_numpy(
            hyperplane_step(
                points.astype("float32"),
                w.astype("float32"),
                value.astype("float32"),
                norm,
                0.0,
                1.0,
            )
        )
        assert np.all(points + step >= -1e-6) and np.all(points + step <= 1 + 1e-6)
        assert np.all(step[:, 4] == 0.0)
        np.testing.assert_array_equal(step[0], 0.0)
        np.testing.assert_allclose(step[1], np.where(w[1] != 0, full, 0.0), atol=1e-6)
        for i in range(2, batch):
            np.testing.assert_allclose(w[i] @ step[i], -value[i], atol=1e-4)
        return step

    step = step_in("linf")
    for i in range(2, batch):
        _, radius = lp_closest_linf(points[i], w[i], value[i] - w[i] @ points[i])
        assert abs(np.abs(step[i]).max() - radius) < 1e-5

    # L2: the KKT solution d = clip(-lam w, lo, hi), lam found by bisection.
    step = step_in("l2")
    for i in range(2, batch):
        lo, hi = -points[i], 1.0 - points[i]
        low, high = (0.0, 1e6) if value[i] > 0 else (-1e6, 0.0)
        for _ in range(200):
            lam = (low + high) / 2
            moved = w[i] @ np.clip(-lam * w[i], lo, hi)
            if moved > -value[i]:  # w . d(lam) decreases with lam
                low = lam
            else:
                high = lam
        expected = np.clip(-lam * w[i], lo, hi)
        np.testing.assert_allclose(step[i], expected, atol=1e-5)

    # L1: the linear program min sum |d| s.t. w . d = -c, d in the box.
    step = step_in("l1")
    for i in range(2, batch):
        (closest,) = min_l1_distances(points[i : i + 1], w[i], value[i : i + 1])
        assert abs(np.abs(step[i]).sum() - closest) < 1e-5
        # Sparse, as the L1 solution is: at most one coordinate moves by
        # less than its room.
        toward = -np.sign(value[i]) * np.sign(w[i])
        room = np.where(toward > 0, 1.0 - points[i], points[i])
        partial = (np.abs(step[i]) > 1e-6) & (np.abs(step[i]) < room - 1e-6)
        assert partial.sum() <= 1


def test_margin_and_gradient_is_value_and_input_gradient():
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(DIM, 4))
    model = linear_classifier(weights, np.zeros(4))
    x = rng.uniform(size=(8, DIM)).astype("float32")
    y = rng.integers(0, 4, size=8)
    t = 5.0
    value, gradient = margin_and_gradient(linear_margin(model, y, t), x)
    logits = x @ weights
    others = np.where(np.eye(4)[y] > 0, -np.inf, t * logits)
    soft = np.exp(others - others.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    expected = weights[:, y].T - soft @ weights.T
    np.testing.assert_allclose(
        to_numpy(value), to_numpy(kr.losses.soft_margin(logits, y, t)), atol=1e-5
    )
    np.testing.assert_allclose(to_numpy(gradient), expected, atol=1e-5)


def test_unreachable_boundary_is_not_found():
    model, x, y, _, _ = binary_problem(5)
    far = linear_classifier(
        np.zeros((DIM, 2)), np.array([10.0, 0.0])
    )  # class 0 everywhere in the box
    labels = np.zeros(len(x), "int32")
    x_hat, found = kr.attacks.boundary_search(
        linear_margin(far, labels), x, steps=5, seed=0
    )
    assert not to_numpy(found).any()
    np.testing.assert_array_equal(to_numpy(x_hat), x)


def test_eager_and_compiled_agree():
    model, x, y, _, _ = binary_problem(6)
    margin = linear_margin(model, y)
    eager, found = kr.attacks.boundary_search(margin, x, steps=10, seed=3)
    other, _ = kr.attacks.boundary_search(margin, x, steps=10, seed=4)
    assert np.abs(to_numpy(eager) - to_numpy(other)).max() > 0  # seeded start
    compiled = kr.backend.compile_function(
        lambda z: kr.attacks.boundary_search(margin, z, steps=10, seed=3),
        jit_compile=False,
    )
    x_tensor = keras.ops.convert_to_tensor(x)
    again, found_again = compiled(x_tensor)
    np.testing.assert_allclose(to_numpy(again), to_numpy(eager), atol=1e-5)
    np.testing.assert_array_equal(to_numpy(found_again), to_numpy(found))
    # XLA (TensorFlow's random kernels differ under XLA: fix the start).
    start = keras.ops.convert_to_tensor(x + 0.01)
    reference, _ = kr.attacks.boundary_search(margin, x, steps=10, start=start)
    xla = kr.backend.compile_function(
        lambda z, s: kr.attacks.boundary_search(margin, z, steps=10, start=s),
        jit_compile=True,
    )
    np.testing.assert_allclose(
        to_numpy(xla(x_tensor, start)[0]), to_numpy(reference), atol=1e-5
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function(jit_compile=True)")
def test_search_inside_xla_compiled_tf_function():
    import tensorflow as tf

    model, x, y, _, _ = binary_problem(7)

    @tf.function(jit_compile=True)
    def search(z, labels):
        return kr.attacks.boundary_search(
            lambda q: kr.losses.soft_margin(model(q), labels, 5.0), z, init_radius=0.0
        )

    x_hat, found = search(tf.constant(x), tf.constant(y))
    eager, _ = kr.attacks.boundary_search(linear_margin(model, y), x, init_radius=0.0)
    assert to_numpy(found).all()
    np.testing.assert_allclose(to_numpy(x_hat), to_numpy(eager), atol=1e-5)


def test_search_on_a_cnn_crosses_the_boundary(digits):
    (x, y), _ = digits
    net = tiny_cnn()
    net.build((None, 8, 8, 1))
    x, y = x[:32], y[:32]
    search = kr.attacks.BoundarySearch(0.1, steps=10, temperature=5.0, seed=0)
    x_hat = to_numpy(search(net, x, y))
    margin = to_numpy(kr.losses.soft_margin(net(x_hat), y, 5.0))
    moved = linf(x_hat - x) > 0
    assert moved.mean() > 0.5
    assert np.all(margin[moved] < 0)
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0


def test_boundary_search_attack_serialization():
    attack = kr.attacks.BoundarySearch(
        0.05, steps=7, temperature=2.0, alpha_max=0.2, overshoot=1.1, backtrack=0.8
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(attack)
    )
    assert isinstance(restored, kr.attacks.BoundarySearch)
    assert restored.get_config() == attack.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 1.5}, TypeError, "steps"),
        ({"norm": "l3"}, ValueError, "norm"),
        ({"init_radius": -0.1}, ValueError, "init_radius"),
        ({"alpha_max": 1.5}, ValueError, "alpha_max"),
        ({"alpha_max": -0.1}, ValueError, "alpha_max"),
        ({"overshoot": 0.9}, ValueError, "overshoot"),
        ({"backtrack": 0.0}, ValueError, "backtrack"),
        ({"backtrack": 1.5}, ValueError, "backtrack"),
        ({"clip_min": 1.0, "clip_max": 0.0}, ValueError, "clip_min"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    model, x, y, _, _ = binary_problem(0, size=2)
    with pytest.raises(error, match=match):
        kr.attacks.boundary_search(linear_margin(model, y), x, **kwargs)


def test_bad_inputs_raise():
    model, x, y, _, _ = binary_problem(0, size=2)
    with pytest.raises(TypeError, match="margin_fn"):
        kr.attacks.boundary_search("margin", x)
    margin = linear_margin(model, y)
    with pytest.raises(ValueError, match="margin_fn"):
        kr.attacks.boundary_search(lambda z: (margin(z),) * 3, x)
    with pytest.raises(ValueError, match=r"\(batch, m\)"):
        kr.attacks.boundary_search(lambda z: margin(z)[:, None, None], x)
    with pytest.raises(ValueError, match="clip_min"):
        kr.attacks.boundary_search(linear_margin(model, y), x * 3.0)
    with pytest.raises(ValueError, match="temperature"):
        kr.attacks.BoundarySearch(0.1, temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        kr.attacks.BoundarySearch(0.0)
