"""Initialisers: fitted statistics, draws, save/load, memory-light fitting."""

import numpy as np
import pytest

import keras_robust as kr


def _class_data(digits, label):
    (x, y), _ = digits
    return x[y == label].reshape(int(np.sum(y == label)), -1).astype("float64")


def test_pca_reproduces_class_means_and_retained_variance(digits):
    (x, y), _ = digits
    init = kr.generation.PCAInitializer(retained_variance=0.9, sigma=0.01).fit(x, y)
    assert init.means.shape == (10, 64) and init.image_shape == (8, 8, 1)
    for label in range(10):
        members = _class_data(digits, label)
        np.testing.assert_allclose(init.means[label], members.mean(0), atol=1e-6)
        eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(members, rowvar=False)))[::-1]
        explained = np.cumsum(eigenvalues) / eigenvalues.sum()
        kept = init.num_components[label]
        # The components whose cumulative share stays below 90% (reference).
        assert explained[kept] >= 0.9 > explained[kept - 1]
        # s_i = sqrt((n - 1) lambda_i).
        np.testing.assert_allclose(
            init.singular_values[label, :kept],
            np.sqrt((len(members) - 1) * eigenvalues[:kept]),
            rtol=1e-4,
        )


def test_pca_of_classes_smaller_than_an_image_matches_the_eigendecomposition(digits):
    # 12 images of 64 pixels per class: fitted by the thin SVD of the
    # centred class data, not by a 64 x 64 eigendecomposition.
    (x, y), _ = digits
    keep = np.concatenate([np.flatnonzero(y == label)[:12] for label in range(10)])
    x, y = x[keep], y[keep]
    init = kr.generation.PCAInitializer(retained_variance=0.9).fit(x, y)
    for label in range(10):
        members = x[y == label].reshape(12, -1).astype("float64")
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(members, rowvar=False))
        eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
        explained = np.cumsum(eigenvalues) / eigenvalues.sum()
        kept = init.num_components[label]
        assert kept == int(np.argmin(explained < 0.9))
        np.testing.assert_allclose(init.means[label], members.mean(0), atol=1e-6)
        np.testing.assert_allclose(
            init.singular_values[label, :kept],
            np.sqrt(11 * eigenvalues[:kept]),
            rtol=1e-4,
        )
        # The same directions up to sign: the same projector on their span.
        ours = init.components[label, :kept].astype("float64")
        theirs = eigenvectors[:, :kept].T
        np.testing.assert_allclose(ours.T @ ours, theirs.T @ theirs, atol=1e-4)


def test_pca_draws_have_the_retained_class_variance(digits):
    (x, y), _ = digits
    members = _class_data(digits, 3)
    count = len(members)
    # sigma = 1 / sqrt(n - 1) gives coefficients with the class's own spread.
    init = kr.generation.PCAInitializer(
        retained_variance=0.8, sigma=1 / np.sqrt(count - 1), clip=(-50.0, 50.0)
    ).fit(x, y)
    draws = init.sample(np.full(20000, 3), rng=0).reshape(20000, -1)
    np.testing.assert_allclose(draws.mean(0), members.mean(0), atol=0.01)
    total = np.trace(np.cov(members, rowvar=False))
    drawn = np.trace(np.cov(draws, rowvar=False))
    kept_share = drawn / total
    assert 0.8 - 0.08 < kept_share < 0.8  # strictly below, as the reference
    # The draws live in the span of the kept components.
    basis = init.components[3, : init.num_components[3]]
    centred = draws - members.mean(0)
    residual = centred - centred @ basis.T @ basis
    assert np.abs(residual).max() < 1e-4


def test_gaussian_reproduces_class_mean_and_covariance(digits):
    (x, y), _ = digits
    init = kr.generation.GaussianInitializer(ridge=1e-4, clip=(-50.0, 50.0)).fit(x, y)
    members = _class_data(digits, 5)
    draws = init.sample(np.full(40000, 5), rng=1).reshape(40000, -1)
    covariance = np.cov(members, rowvar=False) + 1e-4 * np.eye(64)
    np.testing.assert_allclose(draws.mean(0), members.mean(0), atol=0.01)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), covariance, atol=0.01)


def test_draws_are_clipped_and_seeded(digits):
    (x, y), _ = digits
    for init in (
        kr.generation.PCAInitializer(sigma=0.2).fit(x, y),
        kr.generation.GaussianInitializer().fit(x, y),
        kr.generation.UniformInitializer((8, 8, 1)),
    ):
        labels = np.arange(10).repeat(5)
        draws = init.sample(labels, rng=7)
        assert draws.shape == (50, 8, 8, 1) and draws.dtype == np.float32
        assert draws.min() >= 0.0 and draws.max() <= 1.0
        np.testing.assert_array_equal(draws, init.sample(labels, rng=7))
        assert not np.array_equal(draws, init.sample(labels, rng=8))


@pytest.mark.parametrize("name", ["PCAInitializer", "GaussianInitializer"])
def test_save_and_load_round_trip(digits, tmp_path, name):
    (x, y), _ = digits
    init = getattr(kr.generation, name)(clip=(0.0, 1.0)).fit(x, y)
    path = tmp_path / "init.npz"
    init.save(path)
    loaded = kr.generation.load_initializer(path)
    assert type(loaded) is type(init)
    assert loaded.get_config() == init.get_config()
    labels = np.arange(10)
    np.testing.assert_array_equal(loaded.sample(labels, 3), init.sample(labels, 3))


def test_uniform_round_trip(tmp_path):
    init = kr.generation.UniformInitializer((4, 4, 3), clip=(-1.0, 1.0))
    init.save(tmp_path / "uniform.npz")
    loaded = kr.generation.load_initializer(tmp_path / "uniform.npz")
    np.testing.assert_array_equal(loaded.sample([0, 1], 0), init.sample([0, 1], 0))
    assert loaded.sample([0], 0).min() >= -1.0


def test_fitting_copies_one_class_at_a_time(tmp_path):
    # A memory-mapped data set is read class by class, never loaded whole.
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npy"
    images = np.lib.format.open_memmap(path, "w+", "float32", (600, 4, 4, 3))
    images[:] = rng.uniform(size=images.shape)
    images.flush()
    labels = np.repeat(np.arange(3), 200)
    mapped = np.load(path, mmap_mode="r")
    init = kr.generation.PCAInitializer().fit(mapped, labels)
    np.testing.assert_allclose(
        init.means[1], images[200:400].reshape(200, -1).mean(0), atol=1e-6
    )


def test_bad_inputs_name_the_argument(digits, tmp_path):
    (x, y), _ = digits
    with pytest.raises(ValueError, match="`retained_variance`"):
        kr.generation.PCAInitializer(retained_variance=1.5)
    with pytest.raises(ValueError, match="`sigma`"):
        kr.generation.PCAInitializer(sigma=-1.0)
    with pytest.raises(ValueError, match="`ridge`"):
        kr.generation.GaussianInitializer(ridge=-1.0)
    with pytest.raises(ValueError, match="`image_shape`"):
        kr.generation.UniformInitializer((8, 0))
    with pytest.raises(ValueError, match="same length"):
        kr.generation.PCAInitializer().fit(x, y[:-1])
    with pytest.raises(ValueError, match="`x`"):
        kr.generation.PCAInitializer().fit(x * 255, y)
    with pytest.raises(ValueError, match="at least 2 per class"):
        kr.generation.PCAInitializer().fit(x[:3], np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="not fitted"):
        kr.generation.GaussianInitializer().sample([0])
    with pytest.raises(ValueError, match="`labels`"):
        kr.generation.PCAInitializer().fit(x, y).sample([0.5])
    with pytest.raises(ValueError, match="not fitted"):
        kr.generation.PCAInitializer().save(tmp_path / "x.npz")
