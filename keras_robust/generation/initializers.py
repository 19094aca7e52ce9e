"""Starting points of Langevin chains: uniform noise, class Gaussians, class PCA.

A robust classifier generates images by descending an energy from a start
x0. The closer x0 is to the class manifold, the fewer steps the chain needs
and the better the samples (the seed paper's "simple method to push"
quality is a class-wise PCA start). Initialisers are fitted on training
images, hold only numpy arrays and save to / load from an `.npz` file (no
pickled code), so a fitted initialiser travels with a model.

Every initialiser draws with a `numpy.random.Generator` and returns float32
images of shape (n, *image_shape) clipped to the valid range.
"""

import numbers

import numpy as np

from keras_robust.utils import data as data_lib
from keras_robust.utils import validation

_REGISTRY = {}


def _register(cls):
    _REGISTRY[cls.__name__] = cls
    return cls


class Initializer:
    """Base class: `sample(labels, rng) -> x0`.

    Args:
        clip: (low, high) valid pixel range; samples are clipped to it.
    """

    #: names of the numpy arrays `fit` produces; saved by `save`.
    array_names = ()

    def __init__(self, clip=(0.0, 1.0)):
        self.clip = check_clip(clip)
        self.image_shape = None

    @property
    def fitted(self):
        return all(getattr(self, name, None) is not None for name in self.array_names)

    @property
    def num_classes(self):
        """Number of classes it was fitted on, or None when class-free."""
        return None

    def sample(self, labels, rng=None):
        """Starting images for the given class labels.

        Args:
            labels: integer class labels, shape (n,).
            rng: a `numpy.random.Generator`, an int seed or None.

        Returns:
            float32 array of shape (n, *image_shape), inside `clip`.
        """
        if not self.fitted:
            raise ValueError(
                f"{type(self).__name__} is not fitted: call `fit(x, y)` on "
                "training images first (or `kr.generation.load_initializer`)."
            )
        labels = _check_labels(labels, self.num_classes)
        if rng is not None and not isinstance(rng, np.random.Generator):
            rng = validation.non_negative_integer(rng, "rng")
        rng = np.random.default_rng(rng)
        flat = self._sample_flat(labels, rng)
        low, high = self.clip
        flat = np.clip(flat, low, high).astype("float32")
        return flat.reshape((len(labels), *self.image_shape))

    def _sample_flat(self, labels, rng):
        raise NotImplementedError

    def get_config(self):
        return {"clip": list(self.clip)}

    def save(self, path):
        """Writes the configuration and fitted arrays to an `.npz` file."""
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} is not fitted; nothing to save.")
        arrays = {name: getattr(self, name) for name in self.array_names}
        # None values are left out (they would need pickling) and come back
        # as the constructor's default.
        config = {
            f"config.{k}": np.asarray(v)
            for k, v in self.get_config().items()
            if v is not None
        }
        np.savez(
            path,
            class_name=np.asarray(type(self).__name__),
            image_shape=np.asarray(self.image_shape, dtype="int64"),
            **config,
            **arrays,
        )

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


@_register
class UniformInitializer(Initializer):
    """x0 ~ U(low, high), independent of the class.

    Args:
        image_shape: shape of one image, e.g. (32, 32, 3). May be left None
            when the sampler knows it from the classifier's input shape.
        clip: (low, high) range of the uniform draw.

    Example:
    >>> init = kr.generation.UniformInitializer((8, 8, 1))
    >>> init.sample([0, 1, 2], rng=0).shape
    (3, 8, 8, 1)
    """

    def __init__(self, image_shape=None, clip=(0.0, 1.0)):
        super().__init__(clip)
        if image_shape is not None:
            self.image_shape = _image_shape(image_shape)

    @property
    def fitted(self):
        return self.image_shape is not None

    def sample(self, labels, rng=None):
        if self.image_shape is None:
            raise ValueError(
                "UniformInitializer needs `image_shape`, e.g. "
                "UniformInitializer(image_shape=(32, 32, 3))."
            )
        return super().sample(labels, rng)

    def _sample_flat(self, labels, rng):
        low, high = self.clip
        size = (len(labels), int(np.prod(self.image_shape)))
        return rng.uniform(low, high, size=size)

    def get_config(self):
        shape = None if self.image_shape is None else list(self.image_shape)
        return {"image_shape": shape, **super().get_config()}


class _ClassFitted(Initializer):
    """Shared plumbing of initialisers fitted one class at a time."""

    def fit(self, x, y):
        """Fits one distribution per class on training images.

        Only one class is copied into memory at a time (as float64 scatter
        matrices of size pixels x pixels, or, for a class with fewer images
        than pixels, its centred float64 images), so 50,000 CIFAR images
        need a few copies of one class, not of the whole set.

        Args:
            x: images (n, H, W, C) in `clip`, numpy (memory-mapped is fine).
            y: integer labels (n,) or one-hot labels (n, classes).

        Returns:
            self, fitted.
        """
        x = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"`x` must be a non-empty batch of images (n, H, W, C); got shape {x.shape}."
            )
        y = data_lib.integer_labels(y)
        if len(y) != len(x):
            raise ValueError(
                f"`x` and `y` must have the same length; got {len(x)} images "
                f"and {len(y)} labels."
            )
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError("`y` must hold integer class labels >= 0.")
        num_classes = int(y.max()) + 1
        self.image_shape = tuple(int(d) for d in x.shape[1:])
        results = []
        for label in range(num_classes):
            members = x[y == label].reshape(int(np.sum(y == label)), -1)
            if len(members) < 2:
                raise ValueError(
                    f"`y` has {len(members)} example(s) of class {label}; fitting "
                    "a class distribution needs at least 2 per class."
                )
            _check_in_clip(members, self.clip, "x")
            results.append(self._fit_members(members))
        self._store(results)
        return self

    def _fit_members(self, members):
        """The fitted arrays of one class, from its flattened images."""
        mean, scatter = _mean_and_scatter(members)
        return self._fit_class(mean, scatter, len(members))

    def _fit_class(self, mean, scatter, count):
        raise NotImplementedError

    def _store(self, results):
        raise NotImplementedError

    @property
    def num_classes(self):
        return None if self.means is None else len(self.means)


@_register
class GaussianInitializer(_ClassFitted):
    """x0 ~ N(mu_y, Sigma_y + ridge I) per class (JEM++ style), clipped.

    Args:
        ridge: added to the diagonal of each class covariance, 1e-4 by
            default, so that the Cholesky factor exists for any data.
        clip: (low, high) valid pixel range.

    Example:
    >>> init = kr.generation.GaussianInitializer().fit(x_train, y_train)
    >>> x0 = init.sample(labels, rng=0)
    """

    array_names = ("means", "cholesky_factors")

    def __init__(self, ridge=1e-4, clip=(0.0, 1.0)):
        super().__init__(clip)
        self.ridge = validation.positive_number(ridge, "ridge", allow_zero=True)
        self.means = None
        self.cholesky_factors = None

    def _fit_class(self, mean, scatter, count):
        covariance = scatter / (count - 1) + self.ridge * np.eye(len(mean))
        try:
            factor = np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError as error:
            raise ValueError(
                "A class covariance is not positive definite; raise `ridge` "
                f"(now {self.ridge})."
            ) from error
        return mean, factor

    def _store(self, results):
        self.means = np.stack([m for m, _ in results]).astype("float32")
        self.cholesky_factors = np.stack([f for _, f in results]).astype("float32")

    def _sample_flat(self, labels, rng):
        noise = rng.standard_normal((len(labels), self.means.shape[1]))
        offsets = np.einsum("bij,bj->bi", self.cholesky_factors[labels], noise)
        return self.means[labels] + offsets

    def get_config(self):
        return {"ridge": self.ridge, **super().get_config()}


@_register
class PCAInitializer(_ClassFitted):
    """Class-wise PCA start (the seed paper's initialisation).

    For each class y, PCA of its flattened training images keeps the k_y
    leading components whose cumulative explained variance stays strictly
    below `retained_variance`, as the reference
    (`image_generation/utils_func.py`, lines 207-214:
    `components_[:argmin(cum_energy < retained_variance)]`); with
    `strictly_below=False`, the fewest components that reach it (one more).
    A start is

        x0 = clip(mu_y + sum_{i <= k_y} s_i a_i sigma U_i),  a_i ~ N(0, 1),

    with U_i the principal directions and s_i = sqrt((n_y - 1) lambda_i)
    the singular values of the centred class data.

    Args:
        retained_variance: share of the class variance the kept components
            explain, in (0, 1]; 0.8-0.95 in the paper.
        sigma: scale of the coefficients, 0.005-0.02 in the paper.
        clip: (low, high) valid pixel range.
        strictly_below: keep the components whose cumulative share is
            below `retained_variance` (True, default, the reference) or the
            fewest that reach it (False).

    Example:
    >>> init = kr.generation.PCAInitializer(0.95, sigma=0.005).fit(x, y)
    >>> init.save("pca.npz"); init = kr.generation.load_initializer("pca.npz")
    """

    array_names = ("means", "components", "singular_values")

    def __init__(
        self, retained_variance=0.95, sigma=0.005, clip=(0.0, 1.0), strictly_below=True
    ):
        super().__init__(clip)
        if not isinstance(strictly_below, bool):
            raise TypeError(
                f"`strictly_below` must be True or False, got {strictly_below!r}."
            )
        self.strictly_below = strictly_below
        retained_variance = validation.positive_number(
            retained_variance, "retained_variance"
        )
        if retained_variance > 1:
            raise ValueError(
                f"`retained_variance` must lie in (0, 1], got {retained_variance!r}."
            )
        self.retained_variance = retained_variance
        self.sigma = validation.positive_number(sigma, "sigma", allow_zero=True)
        self.means = None
        self.components = None
        self.singular_values = None

    def _fit_members(self, members):
        count, pixels = members.shape
        if count >= pixels:
            return super()._fit_members(members)
        # Fewer images than pixels (a small class of large images): the thin
        # SVD of the centred class data, X - mu = U S V^T, gives the same
        # eigenpairs of the covariance, lambda_i = s_i^2 / (n - 1) with
        # directions V_i, in O(n^2 d) instead of the O(d^3) of a d x d
        # eigendecomposition (CIFAR-10: 3,072 pixels; sklearn's PCA, which
        # the reference calls, takes the same SVD).
        mean = members.mean(axis=0, dtype="float64")
        _, singular_values, directions = np.linalg.svd(
            members.astype("float64") - mean, full_matrices=False
        )
        return self._kept_components(
            mean, singular_values**2 / (count - 1), directions.T, count
        )

    def _fit_class(self, mean, scatter, count):
        eigenvalues, eigenvectors = np.linalg.eigh(scatter / (count - 1))
        order = np.argsort(eigenvalues)[::-1]
        return self._kept_components(
            mean, eigenvalues[order], eigenvectors[:, order], count
        )

    def _kept_components(self, mean, eigenvalues, eigenvectors, count):
        """(mean, kept directions as rows, their singular values)."""
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        total = eigenvalues.sum()
        if total <= 0:
            kept = 0
        else:
            explained = np.cumsum(eigenvalues) / total
            # Index of the first share >= the target: the count strictly below.
            kept = int(np.searchsorted(explained, self.retained_variance - 1e-12))
            if not self.strictly_below:
                kept += 1
        singular_values = np.sqrt((count - 1) * eigenvalues[:kept])
        return mean, eigenvectors[:, :kept].T, singular_values

    def _store(self, results):
        width = max(len(s) for _, _, s in results)
        pixels = len(results[0][0])
        # Classes keep different numbers of components: zero padding leaves
        # the unused rows inert (zero singular value).
        components = np.zeros((len(results), width, pixels), "float32")
        singular_values = np.zeros((len(results), width), "float32")
        for label, (_, class_components, class_values) in enumerate(results):
            components[label, : len(class_values)] = class_components
            singular_values[label, : len(class_values)] = class_values
        self.means = np.stack([m for m, _, _ in results]).astype("float32")
        self.components = components
        self.singular_values = singular_values

    @property
    def num_components(self):
        """Components kept per class, shape (classes,)."""
        return np.count_nonzero(self.singular_values, axis=1)

    def _sample_flat(self, labels, rng):
        flat = self.means[labels].astype("float64")
        # One class at a time: gathering (n, k, pixels) components for a
        # whole batch would cost n copies of the basis.
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            coefficients = rng.standard_normal((len(rows), self.components.shape[1]))
            coefficients *= self.singular_values[label] * self.sigma
            flat[rows] += coefficients @ self.components[label]
        return flat

    def get_config(self):
        return {
            "retained_variance": self.retained_variance,
            "sigma": self.sigma,
            "strictly_below": self.strictly_below,
            **super().get_config(),
        }


def load_initializer(path):
    """Loads an initialiser written by `Initializer.save` (no pickle).

    Args:
        path: the `.npz` file.

    Returns:
        the fitted initialiser.
    """
    with np.load(path, allow_pickle=False) as stored:
        class_name = str(stored["class_name"])
        if class_name not in _REGISTRY:
            raise ValueError(
                f"{path!r} holds an unknown initialiser {class_name!r}; known: "
                f"{sorted(_REGISTRY)}."
            )
        config = {}
        for key in stored.files:
            if key.startswith("config."):
                config[key[len("config.") :]] = stored[key].tolist()
        initializer = _REGISTRY[class_name](**config)
        for name in initializer.array_names:
            setattr(initializer, name, stored[name])
        initializer.image_shape = tuple(int(d) for d in stored["image_shape"])
    return initializer


def _mean_and_scatter(members, chunk=4096):
    """Mean and centred scatter matrix in float64, a chunk of rows at a time."""
    mean = members.mean(axis=0, dtype="float64")
    scatter = np.zeros((members.shape[1],) * 2)
    for start in range(0, len(members), chunk):
        centred = members[start : start + chunk].astype("float64") - mean
        scatter += centred.T @ centred
    return mean, scatter


def _check_in_clip(images, clip, name):
    """Floating, finite images inside `clip`, with advice about `clip`."""
    validation.check_images(
        images,
        *clip,
        name=name,
        range_text=f"`clip` = ({clip[0]}, {clip[1]})",
        advice="Rescale them (pixels in [0, 1] by default) or pass the range "
        "they live in as `clip`.",
    )


def _check_labels(labels, num_classes):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` must be integer class labels of shape (n,); got dtype "
            f"{labels.dtype} and shape {labels.shape}."
        )
    if labels.size and labels.min() < 0:
        raise ValueError("`labels` must be >= 0.")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"`labels` go up to {int(labels.max())} but the initialiser was "
            f"fitted on {num_classes} classes."
        )
    return labels


def check_clip(clip):
    """`clip`, a (low, high) pair of numbers with low < high, as floats."""
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in clip
        )
        or not clip[0] < clip[1]
    ):
        raise ValueError(
            f"`clip` must be a pair (low, high) with low < high; got {clip!r}."
        )
    return float(clip[0]), float(clip[1])


def _image_shape(shape):
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, numbers.Integral) and d >= 1 for d in shape
    ):
        raise ValueError(
            f"`image_shape` must be a tuple of positive integers such as "
            f"(32, 32, 3); got {shape!r}."
        )
    return tuple(int(d) for d in shape)
