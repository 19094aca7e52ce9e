"""Generation settings as in the seed paper's code (issue 22, item 5).

`image_generation/utils.py` multiplies its SGLD noise by alpha = sqrt(2 eta)
unless alpha is passed; `utils_func.py` keeps the PCA components whose
cumulative explained variance is strictly below the target.
"""

import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier


def _noise_std(**kwargs):
    flat = linear_classifier(np.zeros((6, 3)), np.zeros(3))  # zero gradient
    sampler = kr.generation.LangevinSampler(flat, steps=1, seed=3, **kwargs)
    x0 = np.full((2000, 6), 0.5, "float32")
    return (sampler.run(x0, np.zeros(2000, "int32"), verbose=0) - x0).std()


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(step_size=2.0, noise_std=0.01), 0.01),
        (dict(step_size=2.0, noise_std=0.01, alpha=None), 0.02),  # sqrt(2 * 2)
        (dict(step_size=2.0, noise_std=0.01, alpha=0.5), 0.005),
    ],
)
def test_noise_scale_follows_alpha(kwargs, expected):
    assert _noise_std(**kwargs) == pytest.approx(expected, rel=0.04)


def test_alpha_is_checked_and_in_the_config():
    flat = linear_classifier(np.zeros((6, 3)), np.zeros(3))
    sampler = kr.generation.LangevinSampler(flat, step_size=0.5, alpha=None)
    assert sampler.get_config()["alpha"] is None
    assert sampler.noise_scale == pytest.approx(0.001)
    with pytest.raises(ValueError, match="`alpha`"):
        kr.generation.LangevinSampler(flat, alpha=-1.0)


def test_pca_keeps_the_components_strictly_below_the_target(digits):
    (x, y), _ = digits
    x = x.reshape(len(x), -1)
    target = 0.9
    below = kr.generation.PCAInitializer(target).fit(x, y)
    reaching = kr.generation.PCAInitializer(target, strictly_below=False).fit(x, y)
    for label in range(10):
        members = x[y == label]
        eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(members, rowvar=False)))[::-1]
        explained = np.cumsum(eigenvalues) / eigenvalues.sum()
        # utils_func.py: components_[:argmin(cum_energy < retained_variance)]
        expected = int(np.argmin(explained < target))
        assert below.num_components[label] == expected
        assert reaching.num_components[label] == expected + 1
    assert below.get_config()["strictly_below"] is True
    with pytest.raises(TypeError, match="strictly_below"):
        kr.generation.PCAInitializer(strictly_below="yes")
