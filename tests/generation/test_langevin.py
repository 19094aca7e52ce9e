"""LangevinSampler: the step formula, invariants, batching, trajectories."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

DIM = 6
CLASSES = 3


def _linear_problem(seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(DIM, CLASSES)).astype("float32")
    bias = rng.normal(size=CLASSES).astype("float32")
    x0 = rng.uniform(0.3, 0.7, size=(5, DIM)).astype("float32")
    labels = np.array([0, 1, 2, 1, 0])
    return linear_classifier(weights, bias), weights, bias, x0, labels


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_joint_energy_steps_with_momentum_follow_the_formula(jit_compile):
    model, weights, _, x0, labels = _linear_problem()
    eta, zeta = 0.02, 0.5
    sampler = kr.generation.LangevinSampler(
        model,
        steps=2,
        step_size=eta,
        noise_std=0.0,
        momentum=zeta,
        jit_compile=jit_compile,
    )
    # E(x, y) = -(x W + b)_y, so grad_x E = -W[:, y].
    gradient = -weights[:, labels].T
    v1 = -eta / 2 * gradient
    x1 = np.clip(x0 + v1, 0, 1)
    v2 = zeta * v1 - eta / 2 * gradient
    x2 = np.clip(x1 + v2, 0, 1)
    np.testing.assert_allclose(sampler.run(x0, labels, verbose=0), x2, atol=1e-6)


def test_marginal_energy_step_follows_the_formula():
    model, weights, bias, x0, labels = _linear_problem()
    eta = 0.05
    sampler = kr.generation.LangevinSampler(
        model, steps=1, step_size=eta, noise_std=0.0, energy="marginal"
    )
    # E(x) = -logsumexp(x W + b), so grad_x E = -sum_k p_k(x) W[:, k].
    gradient = -_softmax(x0 @ weights + bias) @ weights.T
    expected = np.clip(x0 - eta / 2 * gradient, 0, 1)
    np.testing.assert_allclose(sampler.run(x0, labels, verbose=0), expected, atol=1e-6)


def test_noise_has_the_requested_standard_deviation():
    model, _, _, _, _ = _linear_problem()
    sampler = kr.generation.LangevinSampler(
        model, steps=1, step_size=0.0, noise_std=0.01, seed=3
    )
    x0 = np.full((2000, DIM), 0.5, "float32")
    moved = sampler.run(x0, np.zeros(2000, "int32"), verbose=0) - x0
    assert abs(moved.mean()) < 1e-3
    assert moved.std() == pytest.approx(0.01, rel=0.03)


def test_zero_step_and_noise_return_the_initialisation(digits):
    (x, y), _ = digits
    init = kr.generation.PCAInitializer(0.9, sigma=0.05).fit(x, y)
    sampler = kr.generation.LangevinSampler(
        tiny_cnn(), steps=5, step_size=0.0, noise_std=0.0, initializer=init
    )
    labels = np.arange(10)
    # Equal up to denormals, which XLA flushes to zero.
    np.testing.assert_allclose(
        sampler.sample(labels, seed=4, verbose=0),
        init.sample(labels, rng=4),
        rtol=0,
        atol=1e-30,
    )


@pytest.mark.parametrize("clip", [(0.0, 1.0), (-1.0, 1.0)])
def test_samples_stay_in_the_clip_range(clip):
    sampler = kr.generation.LangevinSampler(
        tiny_cnn(), steps=10, step_size=50.0, noise_std=0.5, momentum=0.9, clip=clip
    )
    images = sampler.sample(np.arange(10), seed=0, verbose=0)
    assert images.shape == (10, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= clip[0] and images.max() <= clip[1]
    # The chain did move and reached both bounds.
    assert images.min() == clip[0] and images.max() == clip[1]


def test_batches_and_seeds_are_consistent():
    labels = np.array([0, 3, 5, 7, 9, 1, 2])
    net = tiny_cnn()

    def sample(batch_size, seed):
        sampler = kr.generation.LangevinSampler(
            net, steps=3, step_size=0.5, noise_std=0.0, batch_size=batch_size
        )
        return sampler.sample(labels, seed=seed, verbose=0)

    # Noise-free chains are per sample: batching does not change them.
    np.testing.assert_allclose(sample(3, 0), sample(100, 0), atol=1e-5)
    noisy = kr.generation.LangevinSampler(net, steps=3, batch_size=3, seed=1)
    first = noisy.sample(labels, seed=11, verbose=0)
    # Equal up to float rounding (oneDNN's threaded sums on TensorFlow).
    np.testing.assert_allclose(
        first, noisy.sample(labels, seed=11, verbose=0), rtol=0, atol=1e-6
    )
    unseeded = noisy.sample(labels, verbose=0)
    assert np.abs(unseeded - noisy.sample(labels, verbose=0)).max() > 1e-3


def test_trajectory_snapshots_match_shorter_chains():
    model, _, _, x0, labels = _linear_problem()
    kwargs = dict(step_size=0.02, noise_std=0.0, momentum=0.3)
    sampler = kr.generation.LangevinSampler(model, steps=6, **kwargs)
    images, trajectory = sampler.run(x0, labels, return_trajectory=2, verbose=0)
    assert trajectory.shape == (4, *x0.shape)
    np.testing.assert_array_equal(trajectory[0], x0)
    np.testing.assert_allclose(trajectory[-1], images, atol=1e-6)
    shorter = kr.generation.LangevinSampler(model, steps=4, **kwargs)
    np.testing.assert_allclose(
        trajectory[2], shorter.run(x0, labels, verbose=0), atol=1e-6
    )


def test_the_sampler_sees_weight_updates_after_compiling():
    model, weights, _, x0, labels = _linear_problem()
    sampler = kr.generation.LangevinSampler(
        model, steps=1, step_size=0.02, noise_std=0.0
    )
    sampler.run(x0, labels, verbose=0)
    model.layers[-1].set_weights([-weights, np.zeros(CLASSES, "float32")])
    expected = np.clip(x0 - 0.01 * weights[:, labels].T, 0, 1)
    np.testing.assert_allclose(sampler.run(x0, labels, verbose=0), expected, atol=1e-6)


def test_robust_model_wrapper_and_bare_callable_are_accepted():
    net = tiny_cnn()
    wrapped = kr.models.AT(net, epsilon=0.1, steps=1)
    kwargs = dict(steps=2, step_size=0.3, noise_std=0.0)
    init = kr.generation.UniformInitializer((8, 8, 1))
    from_wrapper = kr.generation.LangevinSampler(wrapped, initializer=init, **kwargs)
    from_callable = kr.generation.LangevinSampler(
        lambda x: net(x, training=False), initializer=init, **kwargs
    )
    labels = np.arange(4)
    np.testing.assert_allclose(
        from_wrapper.sample(labels, seed=0, verbose=0),
        from_callable.sample(labels, seed=0, verbose=0),
        atol=1e-5,
    )


def test_the_chain_traces_inside_a_users_compiled_function():
    model, weights, _, x0, labels = _linear_problem()
    sampler = kr.generation.LangevinSampler(
        model, steps=1, step_size=0.02, noise_std=0.0
    )
    compiled = kr.backend.compile_function(
        lambda x, y: sampler.chain(x, y), jit_compile=True
    )
    expected = np.clip(x0 + 0.01 * weights[:, labels].T, 0, 1)
    result = compiled(keras.ops.convert_to_tensor(x0), keras.ops.array(labels))
    np.testing.assert_allclose(to_numpy(result), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=0), "`steps`"),
        (dict(step_size=-1.0), "`step_size`"),
        (dict(noise_std=float("nan")), "`noise_std`"),
        (dict(momentum=1.0), "`momentum`"),
        (dict(energy="free"), "`energy`"),
        (dict(clip=(1.0, 0.0)), "`clip`"),
        (dict(batch_size=0), "`batch_size`"),
        (dict(initializer="pca"), "`initializer`"),
        (dict(jit_compile="yes"), "`jit_compile`"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        kr.generation.LangevinSampler(tiny_cnn(), **kwargs)


def test_bad_calls_name_the_argument(digits):
    sampler = kr.generation.LangevinSampler(tiny_cnn(), steps=2)
    with pytest.raises(ValueError, match="`labels`"):
        sampler.sample(np.array([0, 10]), verbose=0)
    with pytest.raises(ValueError, match="`labels` is empty"):
        sampler.sample(np.array([], "int32"), verbose=0)
    with pytest.raises(ValueError, match="`return_trajectory`"):
        sampler.sample(np.arange(3), return_trajectory=5, verbose=0)
    with pytest.raises(ValueError, match="`x0`"):
        sampler.run(np.full((2, 8, 8, 1), 2.0, "float32"), np.arange(2), verbose=0)
    unfitted = kr.generation.LangevinSampler(
        tiny_cnn(), initializer=kr.generation.PCAInitializer()
    )
    with pytest.raises(ValueError, match="not fitted"):
        unfitted.sample(np.arange(3), verbose=0)
    (x, y), _ = digits
    few_classes = kr.generation.GaussianInitializer().fit(x[y < 3], y[y < 3])
    with pytest.raises(ValueError, match="fitted on 3 classes"):
        kr.generation.LangevinSampler(tiny_cnn(), initializer=few_classes).sample(
            np.arange(5), verbose=0
        )
