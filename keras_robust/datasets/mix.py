"""`kr.datasets.mix`: a fixed share of extra (generated) images in every batch.

The recipes that top RobustBench train on batches of which a fixed share
(`unsup_fraction` 0.7) comes from a large generated set and the rest from
the real training set, not on a shuffled union of both (DM-Improves-AT
`core/data/semisup.py`, `SemiSupervisedSampler`, lines 222-262): each batch
takes `int(batch_size * extra_fraction)` extra images drawn uniformly WITH
replacement and the rest from a per-pass permutation of the real images;
an epoch is `ceil(len(real) / batch_size)` batches (line 15).
"""

import math

import numpy as np

from keras_robust.datasets import generated as generated_lib
from keras_robust.datasets.load import _random_crop_flip as random_crop_flip
from keras_robust.utils import validation

# Bytes of extra images read per call of the reader (a few batches' worth):
# fewer Python calls and sorted disk reads, with little memory.
_READ_BYTES = 4 << 20
_READ_BATCHES = 8


def _check_fraction(extra_fraction):
    if isinstance(extra_fraction, bool) or not isinstance(
        extra_fraction, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`extra_fraction` must be a number in [0, 1), got {extra_fraction!r}."
        )
    extra_fraction = float(extra_fraction)
    if not 0.0 <= extra_fraction < 1.0:
        raise ValueError(
            f"`extra_fraction` must lie in [0, 1) (the share of extra images in "
            f"each batch; some real images are always kept), got {extra_fraction!r}."
        )
    return extra_fraction


def _real_examples(real, tf):
    """(dataset of single (image, label) examples, count) from `real`."""
    if isinstance(real, tf.data.Dataset):
        image_spec = real.element_spec[0]
        if image_spec.shape.rank == 4:
            real = real.unbatch()
        count = int(real.cardinality())
        if count < 0:
            count = int(real.reduce(0, lambda n, _: n + 1))
        return real, count
    if not (isinstance(real, (tuple, list)) and len(real) == 2):
        raise TypeError(
            "`real` must be a tuple `(images, labels)` of arrays or a "
            f"`tf.data.Dataset` of (image, label) examples, got {type(real).__name__}."
        )
    images, labels = real
    if isinstance(images, generated_lib.GeneratedData):
        raise TypeError("`real` must be `(images, labels)`, not a GeneratedData.")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or labels.shape != (len(images),):
        raise ValueError(
            "`real` must be `(images, labels)` of shapes (N, H, W, C) and (N,); "
            f"got {images.shape} and {labels.shape}."
        )
    return tf.data.Dataset.from_tensor_slices((images, labels)), len(images)


def _extra_data(extra):
    if isinstance(extra, generated_lib.GeneratedData):
        return extra
    if isinstance(extra, str) or hasattr(extra, "__fspath__"):
        return generated_lib.load_generated(extra)
    if isinstance(extra, (tuple, list)) and len(extra) == 2:
        images, labels = extra
        return generated_lib.GeneratedData(np.asarray(images), np.asarray(labels))
    raise TypeError(
        "`extra` must be a `kr.datasets.load_generated(...)` result, the path of "
        "a generated-data `.npz` file, or `(images, labels)` arrays; got "
        f"{type(extra).__name__}."
    )


def _to_float(image, tf):
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def mix(
    real,
    extra,
    extra_fraction=0.7,
    batch_size=512,
    *,
    steps_per_epoch=None,
    augment=False,
    padding=4,
    flip=True,
    views=1,
    seed=None,
):
    """A `tf.data` pipeline whose every batch holds a fixed share of extra images.

    Each batch of `batch_size` images holds exactly
    `n_extra = int(batch_size * extra_fraction)` images from `extra`, drawn
    uniformly with replacement (as the reference's sampler), and
    `batch_size - n_extra` from `real`, taken from a fresh permutation of the
    real set on every pass; the batch is then shuffled, so the two sources
    are interleaved. The extra images are read from disk batch by batch
    (`extra` may be a memory-mapped file of 50M images).

    Args:
        real: `(images, labels)` arrays (float in [0, 1] or uint8), or a
            `tf.data.Dataset` of (image, label) examples or batches (e.g.
            `kr.datasets.load(..., augment=False, shuffle=False)`).
        extra: a `GeneratedData` (`load_generated`), the path of a
            generated-data `.npz` file, or `(images, labels)` arrays.
        extra_fraction: share of extra images in each batch, in [0, 1).
        batch_size: images per batch.
        steps_per_epoch: batches per epoch; default
            `ceil(len(real) / batch_size)` (the reference's epoch).
        augment: random crop (zero padding `padding`) and, if `flip`, a
            horizontal flip of every image, real and extra (the reference
            augments both alike).
        padding: padding of the random crop (4 for 32x32 images).
        flip: flip horizontally with probability 1/2 when augmenting.
        views: 1, or 2 for consistency regularisation: every image is
            augmented twice and the batch is `[view 1; view 2]` (2 x
            batch_size images, labels repeated), row i pairing with row
            i + batch_size (`kr.losses.consistency_loss` pulls the two
            halves' adversarial predictions together). Needs `augment=True`.
        seed: seed of the order, the draws and the augmentation; with a
            seed, two pipelines give identical batches.

    Returns:
        A repeating-per-epoch `tf.data.Dataset` of `steps_per_epoch`
        batches `(images, labels)`: float32 (batch, H, W, C) in [0, 1] and
        int32 (batch,).

    Raises:
        ValueError: `extra_fraction` outside [0, 1), a bad `batch_size`,
            `steps_per_epoch` or `views`, or `real` and `extra` images of
            different shapes.

    Example:
    >>> extra = kr.datasets.load_generated("1m.npz", image_shape=(32, 32, 3), num_classes=10)
    >>> train = kr.datasets.mix((x_train, y_train), extra, extra_fraction=0.7,
    ...                         batch_size=512, augment=True, seed=0)
    >>> model.fit(train, epochs=400)
    """
    extra_fraction = _check_fraction(extra_fraction)
    batch_size = validation.positive_integer(batch_size, "batch_size")
    views = validation.positive_integer(views, "views")
    if views > 2:
        raise ValueError(f"`views` must be 1 or 2, got {views}.")
    if views == 2 and not augment:
        raise ValueError(
            "`views=2` makes two augmentations of each image: pass `augment=True`."
        )
    padding = validation.non_negative_integer(padding, "padding")
    if seed is not None:
        seed = validation.non_negative_integer(seed, "seed")
    n_extra = int(batch_size * extra_fraction)
    n_real = batch_size - n_extra

    import tensorflow as tf

    real_examples, real_count = _real_examples(real, tf)
    if real_count < 1:
        raise ValueError("`real` holds no examples.")
    if steps_per_epoch is None:
        steps_per_epoch = math.ceil(real_count / batch_size)
    steps_per_epoch = validation.positive_integer(steps_per_epoch, "steps_per_epoch")
    seeds = [None] * 4 if seed is None else [4 * seed + i for i in range(4)]

    real_stream = (
        real_examples.map(lambda x, y: (_to_float(x, tf), tf.cast(y, tf.int32)))
        .shuffle(real_count, seed=seeds[0], reshuffle_each_iteration=True)
        .repeat()
    )
    streams = [real_stream.batch(n_real)]
    if n_extra:
        data = _extra_data(extra)
        if len(data) < 1:
            raise ValueError("`extra` holds no images.")
        real_shape = tuple(real_examples.element_spec[0].shape)
        if real_shape != data.image_shape:
            raise ValueError(
                f"`extra` images have shape {data.image_shape}, the `real` ones "
                f"{real_shape}: they must match."
            )
        streams.append(_extra_stream(data, n_extra, seeds[1], tf))
    batches = tf.data.Dataset.zip(tuple(streams)).map(
        lambda *parts: (
            tf.concat([part[0] for part in parts], axis=0),
            tf.concat([part[1] for part in parts], axis=0),
        )
    )
    batches = tf.data.Dataset.zip(
        (batches, tf.data.Dataset.random(seed=seeds[2]).batch(2))
    ).map(
        lambda batch, order_seed: _shuffled(batch, order_seed, tf),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment:
        batches = tf.data.Dataset.zip(
            (batches, tf.data.Dataset.random(seed=seeds[3]).batch(2))
        ).map(
            lambda batch, aug_seed: _augmented(
                batch, aug_seed, padding, bool(flip), views, tf
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return batches.take(steps_per_epoch).prefetch(tf.data.AUTOTUNE)


def _extra_stream(data, n_extra, seed, tf):
    """Batches of `n_extra` extra examples, rows drawn with replacement."""
    count = len(data)
    image_shape = data.image_shape

    def read(indices):
        return data.take(indices)

    def gather(indices):
        images, labels = tf.numpy_function(
            read, [indices], (tf.as_dtype(data.images.dtype), tf.int32)
        )
        images.set_shape((None, *image_shape))
        labels.set_shape((None,))
        return _to_float(images, tf), labels

    row_bytes = int(np.prod(image_shape)) * data.images.dtype.itemsize
    batches_per_read = min(_READ_BATCHES, max(1, _READ_BYTES // row_bytes // n_extra))
    rows = batches_per_read * n_extra
    indices = (
        tf.data.Dataset.random(seed=seed)
        .map(lambda r: tf.math.floormod(r, count))
        .batch(rows)
        .map(gather)
        .unbatch()
    )
    return indices.batch(n_extra)


def _shuffled(batch, seed, tf):
    images, labels = batch
    size = tf.shape(labels)[0]
    keys = tf.random.stateless_uniform((size,), seed=tf.cast(seed, tf.int32))
    order = tf.argsort(keys)
    return tf.gather(images, order), tf.gather(labels, order)


def _augmented(batch, seed, padding, flip, views, tf):
    images, labels = batch
    size = tf.shape(labels)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), views)
    outputs = []
    for view in range(views):
        per_image = tf.random.experimental.stateless_split(seeds[view], size)
        outputs.append(
            tf.map_fn(
                lambda args: random_crop_flip(args[0], args[1], padding, flip),
                (images, per_image),
                fn_output_signature=tf.float32,
            )
        )
    return tf.concat(outputs, axis=0), tf.tile(labels, [views])
