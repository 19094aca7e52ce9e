"""Running a feature extractor over images, batch by batch.

Every metric accepts either features or images. Images are (n, height,
width, channels) floats in [0, 1] (numpy arrays, backend tensors, or any
iterable of such batches, e.g. a `tf.data.Dataset`); they go through a
feature extractor `batch_size` images at a time with a `keras.utils.Progbar`,
so only one batch of images and features is alive at once. The extractor is
a Keras model (run with `predict_on_batch`), a Keras layer (run with
`training=False`) or any callable `images -> (batch, feature_dim)`; None
means the ImageNet InceptionV3 of `kr.metrics.InceptionV3Extractor`.

Extractors must treat samples independently (inference mode): the last,
shorter batch of an array is padded by repeating its last image, so a
compiled extractor sees one input shape, and the padded rows are dropped.
"""

import keras
import numpy as np

from keras_robust.metrics import inception
from keras_robust.metrics import statistics
from keras_robust.utils import validation

_VERBOSE = (0, 1, 2, "auto")


def check_images(images, name="images"):
    """Checks a concrete batch: (batch, h, w, c) floats in [0, 1], finite.

    Args:
        images: numpy array of images.
        name: argument name used in error messages.
    """
    if images.ndim != 4:
        raise ValueError(
            f"`{name}` must be images of shape (batch, height, width, channels); "
            f"got shape {images.shape}."
        )
    validation.check_images(
        images,
        0.0,
        1.0,
        name=name,
        range_text="[0, 1]",
        advice="kr.metrics expects images in [0, 1]: rescale them, e.g. "
        "`(x + 1) / 2` for a generator with a tanh output or `x / 255` for "
        "8-bit pixels.",
    )


class DefaultExtractor:
    """ImageNet InceptionV3, built on the first call (only if images come).

    One instance is shared by the two sets of FID and KID, so the network is
    built and its weights loaded once per metric call.
    """

    def __init__(self, output="features"):
        self.output = output
        self._extractor = None

    def __call__(self, images):
        if self._extractor is None:
            self._extractor = inception.InceptionV3Extractor(output=self.output)
        return self._extractor(images)


def resolve_extractor(feature_extractor, name="feature_extractor", output="features"):
    """The extractor to run: the given callable, or InceptionV3 when None."""
    if feature_extractor is None:
        return DefaultExtractor(output)
    if not callable(feature_extractor):
        raise TypeError(
            f"`{name}` must be a Keras model or a callable mapping images to "
            f"(batch, feature_dim) features, or None for InceptionV3; got a "
            f"{type(feature_extractor).__name__}."
        )
    return feature_extractor


def _run_extractor(extractor, images, name):
    if isinstance(extractor, keras.Model):
        outputs = extractor.predict_on_batch(images)
    elif isinstance(extractor, keras.layers.Layer):
        outputs = extractor(images, training=False)
    else:
        outputs = extractor(images)
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            f"`{name}` must return a single (batch, feature_dim) array; it "
            f"returned a {type(outputs).__name__}."
        )
    features = np.asarray(keras.ops.convert_to_numpy(outputs))
    if features.ndim != 2 or features.shape[0] != images.shape[0]:
        raise ValueError(
            f"`{name}` must return features of shape (batch, feature_dim) for a "
            f"batch of {images.shape[0]} images; it returned shape "
            f"{features.shape}. For a convolutional model, add global pooling "
            "(e.g. `pooling='avg'`) or a Flatten layer."
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` returned NaN or Inf features.")
    return features


def _pad(images, size):
    if images.shape[0] >= size:
        return images
    repeats = np.repeat(images[-1:], size - images.shape[0], axis=0)
    return np.concatenate([images, repeats], axis=0)


def _to_numpy(batch):
    if isinstance(batch, (tuple, list)):  # (images, labels, ...) from a dataset
        if not batch:
            raise ValueError("A dataset element is an empty tuple.")
        batch = batch[0]
    return np.asarray(keras.ops.convert_to_numpy(batch))


def _is_array(data):
    if hasattr(data, "shape"):
        return True
    if not isinstance(data, (list, tuple)):
        return False
    # A list of (batch, d) or (batch, h, w, c) arrays is a list of batches.
    first = data[0] if data else None
    return not (hasattr(first, "shape") and len(first.shape) in (2, 4))


def _source(data, batch_size, name):
    """(batches, number of samples or None) for an array or an iterable."""
    if _is_array(data):
        array = data if hasattr(data, "shape") else np.asarray(data)
        rank = len(array.shape)
        if rank not in (2, 4):
            raise ValueError(
                f"`{name}` must be features of shape (num_samples, feature_dim) "
                "or images of shape (num_samples, height, width, channels); got "
                f"shape {tuple(array.shape)}."
            )
        count = int(array.shape[0])
        if count == 0:
            raise ValueError(f"`{name}` is empty.")
        if rank == 2:
            return [array], count
        return (array[i : i + batch_size] for i in range(0, count, batch_size)), count
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset
        return data.as_numpy_iterator(), None
    if hasattr(data, "__iter__"):
        return iter(data), None
    raise TypeError(
        f"`{name}` must be an array of features or images, a FeatureStatistics "
        f"where allowed, or an iterable of batches (e.g. a tf.data.Dataset); got "
        f"a {type(data).__name__}."
    )


def feature_batches(
    data,
    feature_extractor=None,
    batch_size=50,
    verbose="auto",
    name="images",
    extractor_name="feature_extractor",
    output="features",
):
    """Yields `(features, extracted)` per batch of `data`.

    Batches of rank 2 are features and pass through (extracted=False); batches
    of rank 4 are images, checked and fed to the extractor (extracted=True),
    which is built only when the first image batch arrives.

    Args:
        data: (n, d) features, (n, h, w, c) images, or an iterable of batches
            of either (an element may be a tuple whose first item is used).
        feature_extractor: see `resolve_extractor`.
        batch_size: images per extractor call for array inputs; the batches
            of an iterable are used as they come.
        verbose: 0 (silent), 1 or 2 (Progbar), "auto" (a bar when there is
            more than one batch of images).
        name, extractor_name: argument names used in error messages.
        output: "features" or "logits": the default InceptionV3's output.
    """
    batch_size = validation.positive_integer(batch_size, "batch_size")
    if verbose not in _VERBOSE:
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto'; got {verbose!r}.")
    if feature_extractor is not None:  # checked even if only features come
        resolve_extractor(feature_extractor, extractor_name, output)
    batches, count = _source(data, batch_size, name)
    extractor = None
    progress = None
    first_size = None
    dim = None
    seen = 0
    for raw in batches:
        batch = _to_numpy(raw)
        if batch.ndim == 2:
            features, extracted = batch, False
            if not np.issubdtype(features.dtype, np.number):
                raise TypeError(f"`{name}` must be numeric, got dtype {batch.dtype}.")
            if not np.all(np.isfinite(features)):
                raise ValueError(f"`{name}` contains NaN or Inf values.")
        elif batch.ndim == 4:
            check_images(batch, name)
            if batch.shape[0] == 0:
                continue
            if extractor is None:
                extractor = resolve_extractor(feature_extractor, extractor_name, output)
                several = count is None or count > batch_size
                level = (1 if several else 0) if verbose == "auto" else verbose
                progress = keras.utils.Progbar(count, verbose=level, unit_name="image")
            first_size = first_size or batch.shape[0]
            padded = _pad(batch, first_size)
            features = _run_extractor(extractor, padded, extractor_name)
            features, extracted = features[: batch.shape[0]], True
        else:
            raise ValueError(
                f"`{name}` must hold features (batch, feature_dim) or images "
                f"(batch, height, width, channels); got a batch of shape "
                f"{batch.shape}."
            )
        if dim is not None and features.shape[1] != dim:
            raise ValueError(
                f"`{name}` gives features of dimension {features.shape[1]} after "
                f"batches of dimension {dim}."
            )
        dim = features.shape[1]
        seen += features.shape[0]
        if progress is not None:
            progress.update(seen)
        yield features, extracted
    if seen == 0:
        raise ValueError(f"`{name}` yielded no samples.")


def extract_features(data, feature_extractor=None, batch_size=50, verbose="auto"):
    """Features of all samples, as one (n, feature_dim) numpy array.

    Args:
        data: (n, h, w, c) images in [0, 1], (n, d) features (returned as
            they are), or an iterable of batches of either.
        feature_extractor: a Keras model, a Keras layer or a callable
            `images -> (batch, feature_dim)`; None for the 2048-d pool
            features of ImageNet InceptionV3.
        batch_size: images per extractor call (array inputs).
        verbose: 0, 1, 2 or "auto" (a progress bar for several batches).

    Returns:
        (n, feature_dim) numpy array (float32 for Keras extractors).

    Example:
    >>> features = kr.metrics.extract_features(x, feature_extractor=encoder)
    """
    parts = [
        f
        for f, _ in feature_batches(
            data, feature_extractor, batch_size, verbose, name="data"
        )
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def feature_statistics(data, feature_extractor=None, batch_size=50, verbose="auto"):
    """Streaming `FeatureStatistics` (mean, covariance) of the features of `data`.

    Only one batch of images and features is in memory at a time, plus the
    d x d scatter matrix: use it for FID on large sets or `tf.data` pipelines.

    Args:
        data, feature_extractor, batch_size, verbose: as in `extract_features`.

    Returns:
        A `FeatureStatistics`.

    Example:
    >>> real = kr.metrics.feature_statistics(dataset.map(lambda x, y: x))
    >>> real.save("real_stats.npz")
    """
    stats = statistics.FeatureStatistics()
    for features, _ in feature_batches(
        data, feature_extractor, batch_size, verbose, name="data"
    ):
        stats.update(features)
    return stats
