"""Square Attack: schedule, invariants, query accounting, black-box strength, seeds."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from keras_robust.attacks.base import as_forward
from keras_robust.attacks.square import _changing_signs
from keras_robust.attacks.square import _positions
from keras_robust.attacks.square import l1_pattern
from keras_robust.attacks.square import l2_pattern
from keras_robust.attacks.square import p_schedule
from keras_robust.attacks.square import window_sizes
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


@keras.saving.register_keras_serializable(package="keras_robust_tests")
class Quantize(keras.layers.Layer):
    """round(16 x) / 16 with a zero input gradient everywhere (masked)."""

    def call(self, x):
        return keras.ops.stop_gradient(keras.ops.round(x * 16.0) / 16.0)


@keras.saving.register_keras_serializable(package="keras_robust_tests")
class BottomRightPixel(keras.layers.Layer):
    """Logits (10 (v - 0.4), 10 (0.4 - v)) of v = x[:, -1, -1, 0]: class 0 iff v > 0.4."""

    def call(self, x):
        v = x[:, -1, -1, 0] - 0.4
        return keras.ops.stack([10.0 * v, -10.0 * v], axis=-1)


# Seed of the numpy draw of the untrained cnn's weights (see `cnn`).
WEIGHTS_SEED = 3


def glorot_uniform_weights(model, seed):
    """Sets Glorot-uniform kernels and zero biases drawn by numpy.

    Keras' initialisers draw other numbers on each backend for one seed, so
    `tiny_cnn()` is a different network on TensorFlow, JAX and PyTorch; these
    weights make it the same network on all three.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for weight in model.get_weights():
        if weight.ndim == 1:
            weights.append(np.zeros_like(weight))
            continue
        receptive = int(np.prod(weight.shape[:-2]))
        fans = receptive * (weight.shape[-2] + weight.shape[-1])
        limit = np.sqrt(6.0 / fans)
        weights.append(rng.uniform(-limit, limit, weight.shape).astype("float32"))
    model.set_weights(weights)


@pytest.fixture
def cnn():
    model = tiny_cnn()
    model.build((None, 8, 8, 1))
    glorot_uniform_weights(model, WEIGHTS_SEED)
    return model


@pytest.fixture
def batch(digits, cnn):
    """Images labelled with the untrained cnn's predictions: all correct.

    The budget tests below need an untrained net whose margins are of the
    size an eps-ball can overturn. 10-27% of weight draws (100 seeds each of
    Keras' initialisers on each backend and of `glorot_uniform_weights`)
    predict almost one class everywhere with a mean margin above 0.1 on
    these 48 digits (median draw: 0.05), and Square with 40 queries then
    fools almost none of them at eps = 0.1 or 0.5 (L2), on every backend.
    """
    (x, _), _ = digits
    logits = to_numpy(cnn(x[:48]))
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert np.mean(top2[:, 1] - top2[:, 0]) < 0.08, "an untypical weight draw"
    return x[:48], logits.argmax(1)


def margins(model, x, y):
    logits = to_numpy(model(x))
    true = logits[np.arange(len(y)), y]
    logits[np.arange(len(y)), y] = -np.inf
    return true - logits.max(1)


def accuracy(model, x, y):
    return float(np.mean(to_numpy(model(x)).argmax(1) == y))


def test_p_schedule_of_the_paper():
    # 10,000 queries: p_init halves after iterations 10, 50, 200, ..., 8000.
    iterations = [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001]
    iterations += [2000, 2001, 4000, 4001, 6000, 6001, 8000, 8001, 9998]
    expected = [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025]
    expected += [0.025, 0.0125, 0.0125, 0.00625, 0.00625, 0.003125]
    expected += [0.003125, 0.0015625, 0.0015625]
    for iteration, p in zip(iterations, expected):
        assert p_schedule(iteration, 10000, 0.8) == pytest.approx(p), iteration
    # 5,000 queries (AutoAttack): the index is rescaled to 10,000 (2i).
    assert [p_schedule(i, 5000, 0.8) for i in (5, 6, 25, 26)] == pytest.approx(
        [0.8, 0.4, 0.4, 0.2]
    )
    assert p_schedule(4998, 5000, 1.0) == pytest.approx(1 / 512)
    np.testing.assert_allclose(p_schedule(np.array([0, 6]), 5000, 0.5), [0.5, 0.25])


def test_p_schedule_of_autoattack():
    # AutoAttack's SquareAttack(resc_schedule=False), p_selection in
    # fra31/auto-attack autoattack/square.py: the raw iteration index against
    # the 10,000-query thresholds "10 < it <= 50: p_init / 2", ...,
    # "4000 < it <= 6000: p_init / 128", whatever the budget.
    iterations = [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000]
    iterations += [2001, 4000, 4001, 4999]
    expected = [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]
    for iteration, divisor in zip(iterations, expected):
        p = p_schedule(iteration, 5000, 0.8, schedule="autoattack")
        assert p == pytest.approx(0.8 / divisor), iteration
        assert p_schedule(iteration, 100, 0.8, schedule="autoattack") == p
    # 5,000 proposals after the initial point; on 32x32 images the L-inf
    # square ends at round(sqrt(0.8 / 128 * 1024)) = 3 pixels, not 1.
    sizes = window_sizes(5000, 0.8, 32, 32, schedule="autoattack")
    assert len(sizes) == 5000
    assert [int(sizes[i]) for i in (0, 11, 51, 4000, 4001, 4999)] == [
        29,
        20,
        14,
        4,
        3,
        3,
    ]
    assert len(window_sizes(1, 0.8, 8, 8, schedule="autoattack")) == 1


def test_autoattack_schedule_also_proposes_a_window_it_leaves_unchanged():
    # Grey image already at x + eps everywhere; the sign uniform 0.9 picks
    # +1, the sign that changes nothing. AutoAttack spends the query on it;
    # the paper's code (schedule="rescaled") draws -1, the only sign that
    # moves the window.
    x = keras.ops.convert_to_tensor(np.full((1, 8, 8, 1), 0.5, "float32"))
    x_best = x + 0.1
    u = keras.ops.convert_to_tensor([[0.0, 0.0, 0.9]], "float32")
    proposed = {}
    for schedule in ("autoattack", "rescaled"):
        attack = kr.attacks.Square(0.1, schedule=schedule)
        propose = attack._linf_proposal(x)
        proposed[schedule] = to_numpy(propose(x_best, u, 3, None))[0, ..., 0]
    np.testing.assert_allclose(proposed["autoattack"], 0.6, atol=1e-6)
    changed = np.abs(proposed["rescaled"] - 0.6) > 1e-6
    np.testing.assert_array_equal(
        changed, (np.arange(8)[:, None] < 3) & (np.arange(8) < 3)
    )
    np.testing.assert_allclose(proposed["rescaled"][changed], 0.4, atol=1e-6)


@pytest.mark.parametrize("last_position", [True, False])
def test_window_corners_are_uniform_over_the_schedules_positions(last_position):
    # Uniforms at the centres of 840 equal cells (840 = lcm(1, ..., 8)):
    # each allowed corner gets exactly its share. The paper's law allows {0, ..., h - s}; AutoAttack's
    # `random_int(0, h - s)` allows {0, ..., h - s - 1}, and 0 when s = h.
    u = (np.arange(840) + 0.5) / 840
    u, u_reversed = (keras.ops.convert_to_tensor(v, "float32") for v in (u, u[::-1]))
    for size in (1, 3, 7, 8):
        rows, cols = _positions(u, u_reversed, size, 8, 8, last_position)
        allowed = 8 - size + 1 if last_position else max(8 - size, 1)
        for corners in (to_numpy(rows), to_numpy(cols)):
            counts = np.bincount(corners, minlength=allowed)
            np.testing.assert_array_equal(counts, np.full(allowed, 840 // allowed))


def test_autoattack_windows_never_reach_the_last_row_and_column():
    # The model reads only the bottom-right pixel of grey images. x_0's
    # stripe puts it at 0.3 (fooled at the start) or 0.7 (correct, and no
    # proposal that misses the pixel changes the loss). AutoAttack's windows
    # never cover it, so the 0.7 points stay unbroken; the paper's law
    # reaches it and breaks them all.
    model = keras.Sequential([keras.Input((8, 8, 1)), BottomRightPixel()])
    x = np.full((32, 8, 8, 1), 0.5, "float32")
    y = np.zeros(32, "int64")
    broken = {}
    for schedule in ("autoattack", "rescaled"):
        square = kr.attacks.Square(0.2, queries=1000, schedule=schedule, seed=1)
        x_adv, queries = square.attack_with_queries(model, x, y)
        x_adv, queries = to_numpy(x_adv), to_numpy(queries)
        broken[schedule] = to_numpy(model(x_adv)).argmax(1) != y
        if schedule == "autoattack":
            # Fooled by x_0 (1 query) or never (all 1 + 1000 queries).
            np.testing.assert_array_equal(queries, np.where(broken[schedule], 1, 1001))
    assert 0 < broken["autoattack"].sum() < 32
    assert broken["rescaled"].all()


def test_window_sizes_on_cifar_shaped_images():
    # s = round(sqrt(p * 32 * 32)) for p = 0.8, 0.4, ..., 0.8 / 512.
    sizes = window_sizes(5000, 0.8, 32, 32)
    assert len(sizes) == 4999
    firsts = [0, 6, 26, 101, 251, 501, 1001, 2001, 3001, 4001]
    assert [int(sizes[i]) for i in firsts] == [29, 20, 14, 10, 7, 5, 4, 3, 2, 1]
    # L2: at least 3 and odd.
    sizes = window_sizes(5000, 0.8, 32, 32, norm="l2")
    assert [int(sizes[i]) for i in firsts] == [29, 21, 15, 11, 7, 5, 5, 3, 3, 3]
    np.testing.assert_array_equal(window_sizes(5000, 0.8, 32, 32, norm="l1"), sizes)
    assert window_sizes(100, 1.0, 8, 8).max() == 8  # never above the image
    assert len(window_sizes(1, 0.8, 8, 8)) == 0


def test_l2_pattern_has_opposite_halves_and_unit_norm():
    pattern = l2_pattern(5)
    assert np.linalg.norm(pattern) == pytest.approx(1.0)
    assert (pattern[:2] > 0).all() and (pattern[2:] < 0).all()
    # Each half peaks at its centre (row rows // 2, column 2) and is
    # symmetric left-right.
    assert pattern[1, 2] == pattern[:2].max() and pattern[3, 2] == pattern.min()
    np.testing.assert_allclose(pattern, pattern[:, ::-1])


def nested_rectangles(rows, cols, power):
    """The reference's `eta_rectangles` loop: rectangles of side 2k + 1 around
    (rows // 2, cols // 2), cut to the window, each adding 1 / (k + 1)^power."""
    delta = np.zeros((rows, cols))
    top, left = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        delta[
            max(top - k, 0) : min(top - k + 2 * k + 1, rows),
            max(left - k, 0) : min(left - k + 2 * k + 1, cols),
        ] += 1.0 / (k + 1) ** power
    return delta


@pytest.mark.parametrize("size", [1, 3, 4, 7])
def test_patterns_are_the_references_nested_rectangles(size):
    # The reference's `eta`: +rectangles on the top half, -rectangles on the
    # bottom, each half normalised (L2: 1 / (k + 1)^2 and L2 norms; L1:
    # 1 / (k + 1)^4 and L1 norms), then the whole.
    for pattern, power, size_of in (
        (l2_pattern, 2, np.linalg.norm),
        (l1_pattern, 4, lambda a: np.abs(a).sum()),
    ):
        expected = np.zeros((size, size))
        half = size // 2
        if half:
            top = nested_rectangles(half, size, power)
            expected[:half] = top / size_of(top)
        bottom = nested_rectangles(size - half, size, power)
        expected[half:] = -bottom / size_of(bottom)
        expected /= size_of(expected)
        np.testing.assert_allclose(pattern(size), expected, rtol=1e-12)
        assert size_of(pattern(size)) == pytest.approx(1.0)


def test_sign_vectors_are_uniform_among_those_that_change_the_window():
    # Channel 0 changes only with +1, channels 1 and 2 never: 4 allowed vectors.
    minus = keras.ops.convert_to_tensor(np.zeros((4, 3), bool))
    plus = keras.ops.convert_to_tensor(np.array([[True, False, False]] * 4))
    u = keras.ops.convert_to_tensor((np.arange(4) + 0.5) / 4, "float32")
    signs = to_numpy(_changing_signs(minus, plus, u, 3))
    assert (signs[:, 0] == 1).all()
    assert sorted(map(tuple, signs[:, 1:])) == [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    # Every channel changes with both signs: all 8 vectors, in order.
    both = keras.ops.convert_to_tensor(np.ones((8, 3), bool))
    u = keras.ops.convert_to_tensor((np.arange(8) + 0.5) / 8, "float32")
    signs = to_numpy(_changing_signs(both, both, u, 3))
    assert len(set(map(tuple, signs))) == 8


@pytest.mark.parametrize(
    "norm, epsilon, schedule",
    [
        ("linf", 0.1, "rescaled"),
        ("l2", 0.5, "rescaled"),
        ("l1", 2.0, "rescaled"),
        ("linf", 0.1, "autoattack"),
    ],
)
def test_ball_clip_range_and_query_budget(cnn, batch, norm, epsilon, schedule):
    x, y = batch  # y: the model's own predictions, so every point is attacked
    y = y.copy()
    y[:8] = (y[:8] + 1) % 10  # ... except these, misclassified from the start
    attack = kr.attacks.Square(epsilon, queries=40, norm=norm, schedule=schedule)
    # AutoAttack's loop makes `queries` proposals after the initial query.
    budget = 40 if schedule == "rescaled" else 41
    x_adv, queries = attack.attack_with_queries(cnn, x, y, seed=1)
    x_adv, queries = to_numpy(x_adv), to_numpy(queries)

    delta = (x_adv - x).reshape(len(x), -1)
    size = {
        "linf": np.abs(delta).max(1),
        "l2": np.linalg.norm(delta, axis=1),
        "l1": np.abs(delta).sum(1),
    }[norm]
    assert size.max() <= epsilon + 1e-5
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert size[8:].mean() > 0.5 * epsilon
    fooled = to_numpy(cnn(x_adv)).argmax(1) != y
    assert fooled[8:].mean() > 0.2

    np.testing.assert_array_equal(attack.last_queries, queries)
    assert queries.dtype == np.int32 and queries.max() <= budget
    np.testing.assert_array_equal(queries[:8], 0)
    np.testing.assert_array_equal(x_adv[:8], x[:8])
    assert (queries[8:] >= 1).all()
    # A sample stops early only when it is misclassified.
    assert fooled[8:][queries[8:] < budget].all()
    assert (queries[8:][~fooled[8:]] == budget).all()

    # Proposals are accepted only when the margin drops, so the search never
    # ends above its start (queries=1: the initial point only, same draws).
    start = kr.attacks.Square(epsilon, queries=1, norm=norm)
    x_start, queries_start = start.attack_with_queries(cnn, x, y, seed=1)
    np.testing.assert_array_equal(to_numpy(queries_start), np.arange(len(x)) >= 8)
    before = margins(cnn, to_numpy(x_start), y)[8:]
    after = margins(cnn, x_adv, y)[8:]
    assert (after <= before + 1e-6).all() and (after < before).mean() > 0.5


def test_a_longer_run_never_ends_higher(cnn, batch):
    """With a constant window size (small p_init), a longer run continues a
    shorter one with the same seed: its margin is never higher, per sample."""
    x, y = batch
    assert len(set(window_sizes(60, 0.01, 8, 8))) == 1
    short, long = (kr.attacks.Square(0.05, queries=q, p_init=0.01) for q in (20, 60))
    m_short = margins(cnn, to_numpy(short(cnn, x, y, seed=2)), y)
    m_long = margins(cnn, to_numpy(long(cnn, x, y, seed=2)), y)
    assert (m_long <= m_short + 1e-6).all() and (m_long < m_short).any()


def test_black_box_breaks_a_gradient_masked_model(digits):
    """A zero input gradient stops PGD, not Square."""
    (x_train, y_train), (x_test, y_test) = digits
    keras.utils.set_random_seed(0)
    net = tiny_cnn()
    net.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    net.fit(x_train, y_train, batch_size=64, epochs=8, verbose=0)
    inputs = keras.Input((8, 8, 1))
    masked = keras.Model(inputs, net(Quantize()(inputs)))
    x, y = x_test[:96], y_test[:96]
    gradient = kr.backend.input_gradient(
        lambda v: keras.ops.sum(masked(v, training=False)),
        keras.ops.convert_to_tensor(x),
    )
    assert np.abs(to_numpy(gradient)).max() == 0.0
    epsilon = 0.2
    clean = accuracy(masked, x, y)
    pgd = accuracy(masked, to_numpy(kr.attacks.PGD(epsilon, steps=10)(masked, x, y)), y)
    square = kr.attacks.Square(epsilon, queries=300)
    run = kr.backend.compile_function(
        lambda a, b: square(masked, a, b, seed=0), jit_compile=False
    )
    x_adv = to_numpy(run(keras.ops.convert_to_tensor(x), y))
    assert np.abs(x_adv - x).max() <= epsilon + 1e-6
    square_accuracy = accuracy(masked, x_adv, y)
    print(f"\nclean {clean:.3f}, PGD-10 {pgd:.3f}, Square-300 {square_accuracy:.3f}")
    assert clean > 0.8
    assert pgd > 0.8 * clean  # only the random start moves it
    assert square_accuracy < 0.5 * clean


@pytest.mark.parametrize(
    "norm, epsilon, restarts", [("linf", 0.1, 2), ("l2", 0.5, 1), ("l1", 2.0, 1)]
)
def test_same_seed_same_result_eager_and_compiled(cnn, batch, norm, epsilon, restarts):
    x, y = batch
    attack = kr.attacks.Square(epsilon, queries=30, norm=norm, restarts=restarts)
    # Op by op: `perturb` itself, outside any compiled function.
    eager, eager_queries = attack.perturb(
        as_forward(cnn), keras.ops.convert_to_tensor(x), y, lambda i: 5 + i
    )
    eager, eager_queries = to_numpy(eager), to_numpy(eager_queries)
    assert eager_queries.max() <= restarts * 30
    # Calls compile from the first one on (and reuse it on the second).
    for _ in range(2):
        called, called_queries = attack.attack_with_queries(cnn, x, y, seed=5)
        np.testing.assert_allclose(eager, to_numpy(called), atol=1e-6)
        np.testing.assert_array_equal(eager_queries, to_numpy(called_queries))
    if norm != "linf":
        return
    compiled_attack = kr.backend.compile_function(
        lambda a, b: attack(cnn, a, b, seed=5), jit_compile=False
    )
    compiled = to_numpy(compiled_attack(keras.ops.convert_to_tensor(x), y))
    np.testing.assert_allclose(eager, compiled, atol=1e-6)
    other = to_numpy(attack(cnn, x, y, seed=6))
    assert np.abs(eager - other).max() > 0.01


def test_cross_entropy_loss_and_grey_images_without_channel_axis(batch):
    x, y = batch
    inputs = keras.Input((8, 8))
    model = tiny_cnn()
    grey = keras.Model(inputs, model(keras.layers.Reshape((8, 8, 1))(inputs)))
    labels = to_numpy(grey(x[..., 0])).argmax(1)
    attack = kr.attacks.Square(0.1, queries=30, loss="ce", seed=0)
    x_adv = to_numpy(attack(grey, x[..., 0], labels))
    assert x_adv.shape == x[..., 0].shape
    assert np.abs(x_adv - x[..., 0]).max() <= 0.1 + 1e-6
    assert accuracy(grey, x_adv, labels) < 1.0


def test_serialization_round_trip():
    attack = kr.attacks.Square(
        0.5,
        queries=123,
        norm="l2",
        p_init=0.3,
        loss="ce",
        restarts=2,
        seed=3,
        schedule="autoattack",
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(attack)
    )
    assert isinstance(restored, kr.attacks.Square)
    assert restored.get_config() == attack.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"queries": 0}, ValueError, "queries"),
        ({"queries": 2.5}, TypeError, "queries"),
        ({"p_init": 0.0}, ValueError, "p_init"),
        ({"p_init": 1.5}, ValueError, "p_init"),
        ({"norm": "l3"}, ValueError, "norm"),
        ({"loss": "dlr"}, ValueError, "loss"),
        ({"restarts": 0}, ValueError, "restarts"),
        ({"schedule": "paper"}, ValueError, "schedule"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.attacks.Square(0.1, **kwargs)


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="only eager torch keeps an autograd graph per query; TensorFlow "
    "graphs and JAX traces keep none",
)
def test_queries_do_not_keep_their_autograd_graphs():
    # Before the fix each query's graph (the model's saved activations, here
    # about 2 MB) stayed reachable from the search state: 64 digits with
    # 5,000 queries took 13 GB on torch.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(4096, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    resident = {}
    calls = [0]

    def forward(images):
        calls[0] += 1
        resident[calls[0]] = _resident_bytes()
        return model(images, training=False)

    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    # Labels the model's own predictions: every point is attacked throughout.
    y = to_numpy(model(x)).argmax(1)
    kr.attacks.Square(0.01, queries=400, seed=0)(forward, x, y)
    assert calls[0] > 400
    assert resident[calls[0]] - resident[20] < 200 * 2**20, calls
