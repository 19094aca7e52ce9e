"""The default feature extractor: Keras' ImageNet InceptionV3.

FID and KID use the 2048-d global-average-pool features of InceptionV3
(`output="features"`); the Inception Score uses its 1000 ImageNet logits
(`output="logits"`). Images in [0, 1] of any size are resized to 299 x 299
(bilinear), grey-scale images are replicated to 3 channels, and pixels are
mapped to InceptionV3's input range [-1, 1] by x -> 2 x - 1.

The ImageNet weights are downloaded by Keras on first use into
`$KERAS_HOME/models` (by default `~/.keras/models`). Offline, construction
raises `WeightsUnavailableError` that says where to put the file; random
weights are never used unless you ask for them with `weights=None`.

Scores from Keras' InceptionV3 are close to, but not identical with, the
numbers of the original TensorFlow FID/IS graphs (pytorch-fid, TTUR) that
papers report: compare only numbers computed with the same extractor.
"""

import os
import warnings

import keras
import numpy as np

INPUT_SIZE = 299

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
# output -> (file name, md5), as in keras.applications.InceptionV3.
_WEIGHT_FILES = {
    "features": (
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "bcbd6486424b2319ff4ef7d526e38f63",
    ),
    "logits": (
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        "9a0d58056eeedaa3f26cb7ebd46da564",
    ),
}
_OUTPUTS = ("features", "logits")


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights of the default extractor could not be loaded."""


def keras_cache_dir():
    """Where Keras caches downloaded weights: `$KERAS_HOME/models`."""
    home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return os.path.join(os.path.expanduser(home), "models")


def inception_preprocess(images):
    """Maps [0, 1] NHWC images to InceptionV3's 299 x 299 x 3 input in [-1, 1].

    x -> 2 x - 1 after a bilinear resize to 299 x 299 (skipped when the images
    already have that size) and after replicating a single grey channel to 3.

    Args:
        images: (batch, height, width, channels) floats in [0, 1] with 1 or 3
            channels.

    Returns:
        (batch, 299, 299, 3) float32 tensor in [-1, 1].

    Example:
    >>> kr.metrics.inception_preprocess(np.full((2, 8, 8, 1), 0.5)).shape
    (2, 299, 299, 3)   # all zeros
    """
    x = keras.ops.cast(keras.ops.convert_to_tensor(images), "float32")
    if len(x.shape) != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "The InceptionV3 extractor needs images of shape (batch, height, "
            f"width, channels) with 1 (grey) or 3 (RGB) channels; got shape "
            f"{tuple(x.shape)}. Pass your own `feature_extractor` for other "
            "inputs."
        )
    if x.shape[-1] == 1:
        x = keras.ops.repeat(x, 3, axis=-1)
    if tuple(x.shape[1:3]) != (INPUT_SIZE, INPUT_SIZE):
        x = keras.ops.image.resize(
            x, (INPUT_SIZE, INPUT_SIZE), interpolation="bilinear"
        )
    return 2.0 * x - 1.0


def _unavailable_message(output, detail):
    fname, _ = _WEIGHT_FILES[output]
    consumer = (
        "inception_score(classifier=...)"
        if output == "logits"
        else ("feature_extractor=...")
    )
    return (
        f"Could not load the InceptionV3 ImageNet weights for output={output!r} "
        f"({detail}). The default extractor never falls back to random weights. "
        f"To provide them offline, download\n  {_BASE_URL}{fname}\nto\n  "
        f"{os.path.join(keras_cache_dir(), fname)}\n(Keras' cache, "
        "$KERAS_HOME/models, by default ~/.keras/models), or pass "
        f'weights="/path/to/{fname}", or use your own extractor ({consumer}).'
    )


def _resolve_weights(weights, output):
    """A local weights file for `weights`, or None for random weights."""
    if weights is None:
        warnings.warn(
            "InceptionV3Extractor(weights=None) uses random, untrained weights: "
            "its scores are meaningless except to test the plumbing.",
            stacklevel=3,
        )
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "`weights` must be 'imagenet', a path to an .h5/.weights.h5 file or "
            f"None; got a {type(weights).__name__}."
        )
    if weights == "imagenet":
        fname, md5 = _WEIGHT_FILES[output]
        try:
            return keras.utils.get_file(
                fname, _BASE_URL + fname, cache_subdir="models", file_hash=md5
            )
        except Exception as error:  # Offline, DNS, HTTP, hash mismatch.
            raise WeightsUnavailableError(
                _unavailable_message(output, f"download failed: {error}")
            ) from error
    path = os.path.expanduser(os.fspath(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            _unavailable_message(output, f"`weights` file {path!r} does not exist")
        )
    return path


class InceptionV3Extractor:
    """InceptionV3 pool features (2048-d) or ImageNet logits (1000) of images.

    A callable `images -> features` for `kr.metrics`: images are (batch, h, w,
    1 or 3) floats in [0, 1] of any size; see `inception_preprocess`.

    Args:
        output: "features" for the 2048-d global-average-pool features used
            by FID and KID, or "logits" for the 1000 ImageNet logits used by
            the Inception Score.
        weights: "imagenet" (Keras' pretrained weights, downloaded once into
            `$KERAS_HOME/models`), a path to a weights file of the matching
            architecture (the `_notop` file for "features"), or None for
            random weights (tests only; warns).

    Raises:
        WeightsUnavailableError: the weights could not be downloaded or
            loaded; the message says which file to put where.

    Example:
    >>> extractor = kr.metrics.InceptionV3Extractor()   # build once, reuse
    >>> kr.metrics.frechet_distance(x_real, x_fake, feature_extractor=extractor)
    """

    def __init__(self, output="features", weights="imagenet"):
        if output not in _OUTPUTS:
            raise ValueError(
                f"`output` must be 'features' or 'logits'; got {output!r}."
            )
        self.output = output
        path = _resolve_weights(weights, output)
        top = output == "logits"
        self.model = keras.applications.InceptionV3(
            include_top=top,
            weights=None,
            input_shape=(INPUT_SIZE, INPUT_SIZE, 3),
            pooling=None if top else "avg",
            classifier_activation=None,
        )
        if path is not None:
            try:
                self.model.load_weights(path)
            except Exception as error:  # Wrong (top vs notop) or corrupt file.
                raise WeightsUnavailableError(
                    _unavailable_message(output, f"loading {path!r} failed: {error}")
                ) from error

    @property
    def output_dim(self):
        """2048 for "features", 1000 for "logits"."""
        return int(self.model.output.shape[-1])

    def __call__(self, images):
        """(batch, h, w, c) images in [0, 1] -> (batch, output_dim) numpy."""
        x = inception_preprocess(images)
        return np.asarray(self.model.predict_on_batch(x))

    def __repr__(self):
        return f"InceptionV3Extractor(output={self.output!r})"
