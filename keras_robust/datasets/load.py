"""`kr.datasets.load`: batched, augmented `tf.data` pipelines for `model.fit`.

CIFAR-10, CIFAR-100 and SVHN come from tensorflow-datasets (tfds); `digits`
comes from scikit-learn through `load_digits`. TensorFlow and tfds are
imported inside the functions, so `import keras_robust` stays fast and does
not need TensorFlow on the JAX backend.
"""

from keras_robust.datasets.digits import load_digits
from keras_robust.utils import validation

# name -> (tfds name or None, splits, padding of the random crop, flip,
# whether the train split is augmented by default).
# SVHN and digits are not flipped: a mirrored digit is not the same digit.
# Digits are 8x8, so the crop pads 1 pixel: the same 1/8 of the side as the
# 4 pixels of the 32x32 data sets. Digits are not augmented by default: a
# 1-pixel shift of an 8x8 digit is a large change, and WEAT on digits (30
# epochs, eps 0.2) measured 91.1% clean / 20.7% AutoAttack-fast accuracy with
# it against 95.1% / 48.9% without.
_DATASETS = {
    "cifar10": ("cifar10", ("train", "test"), 4, True, True),
    "cifar100": ("cifar100", ("train", "test"), 4, True, True),
    "svhn": ("svhn_cropped", ("train", "test", "extra"), 4, False, True),
    "digits": (None, ("train", "test"), 1, False, False),
}

# Enough to hold CIFAR's whole training set: an exact per-epoch permutation.
_SHUFFLE_BUFFER = 50_000
# Seconds to wait for the download server before calling the machine offline.
_PROBE_TIMEOUT = 5.0


def load(
    name,
    split="train",
    batch_size=128,
    *,
    augment=None,
    shuffle=None,
    seed=None,
    drop_remainder=False,
    data_dir=None,
    download=True,
):
    """A batched, prefetched `tf.data.Dataset` of `(images, labels)`.

    Images are float32 NHWC in [0, 1]; labels are int32 class indices. The
    dataset works with `model.fit`/`evaluate` on every Keras backend.

    | name | source | image shape | classes | splits |
    |---|---|---|---|---|
    | `"cifar10"` | tfds `cifar10` | (32, 32, 3) | 10 | train, test |
    | `"cifar100"` | tfds `cifar100` | (32, 32, 3) | 100 | train, test |
    | `"svhn"` | tfds `svhn_cropped` | (32, 32, 3) | 10 | train, test, extra |
    | `"digits"` | scikit-learn (offline) | (8, 8, 1) | 10 | train, test |

    `digits` uses the fixed stratified split of `load_digits()` (1,347 train,
    450 test images). For the tfds data sets, `split` may carry a tfds slice,
    e.g. `"train[:45000]"` and `"train[45000:]"` to hold out a validation set
    (the defaults of `augment` and `shuffle` follow the name before `[`).

    Augmentation is the standard one of the robust-training references: a
    random crop of the image padded with zeros (4 pixels; 1 pixel for the
    8x8 digits), then a random horizontal flip (not for SVHN and digits,
    whose mirrored digits are not digits). Decoded tfds images are cached in
    memory as uint8 (about 150 MB for CIFAR train), except SVHN `extra`.

    Args:
        name: `"cifar10"`, `"cifar100"`, `"svhn"` or `"digits"`.
        split: `"train"`, `"test"`, or `"extra"` (SVHN only).
        batch_size: images per batch, an integer >= 1.
        augment: random crop (and flip) each image. `None` means `True` for
            the train split of cifar10, cifar100 and svhn, and `False`
            otherwise (digits: a 1-pixel shift of an 8x8 digit cost WEAT 28
            points of AutoAttack accuracy).
        shuffle: reshuffle the examples every epoch. `None` means `True` for
            the train split and `False` otherwise.
        seed: integer seed of the shuffling and the augmentation. With a seed,
            two calls give identical batches, epoch by epoch (under the same
            global TensorFlow seed, which `keras.utils.set_random_seed` sets).
            `None` draws fresh randomness.
        drop_remainder: drop the last batch if it is smaller than
            `batch_size` (on JAX, a smaller last batch costs one more
            compilation).
        data_dir: folder of prepared tfds data. `None` uses tfds' default,
            `$TFDS_DATA_DIR` or `~/tensorflow_datasets`. Ignored for digits.
        download: download and prepare the data set when it is not found in
            `data_dir`. With `False`, missing data raises `FileNotFoundError`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches: float32 images of
        shape (batch, height, width, channels) in [0, 1] and int32 labels of
        shape (batch,).

    Raises:
        ValueError: for an unknown `name` or `split`, or `batch_size` < 1.
        TypeError: for a `batch_size` or `seed` that is not an integer.
        FileNotFoundError: the data is not in `data_dir` and `download=False`.
        ConnectionError: the data is not in `data_dir` and cannot be
            downloaded (e.g. no network). The message says how to prepare a
            copy elsewhere and point `data_dir` at it.

    Example:
    >>> train = kr.datasets.load("cifar10", "train", batch_size=128, seed=0)
    >>> test = kr.datasets.load("cifar10", "test", batch_size=512)
    >>> model.fit(train, epochs=100, validation_data=test)
    """
    if isinstance(name, str) and name.lower() in _DATASETS:
        name = name.lower()
    validation.one_of(name, "name", tuple(_DATASETS))
    tfds_name, splits, padding, flip, augment_train = _DATASETS[name]
    base_split = split.split("[", 1)[0].strip() if isinstance(split, str) else split
    if base_split not in splits or (tfds_name is None and base_split != split):
        slicing = "" if tfds_name is None else " (optionally with a tfds slice)"
        options = ", ".join(repr(s) for s in splits)
        raise ValueError(
            f"`split` for {name!r} must be one of {options}{slicing}; got {split!r}."
        )
    batch_size = validation.positive_integer(batch_size, "batch_size")
    if seed is not None:
        seed = validation.non_negative_integer(seed, "seed")
    is_train = base_split == "train"
    augment = (is_train and augment_train) if augment is None else bool(augment)
    shuffle = is_train if shuffle is None else bool(shuffle)
    # Distinct seeds, so that the order and the augmentation are independent.
    shuffle_seed = None if seed is None else 2 * seed
    augment_seed = None if seed is None else 2 * seed + 1

    import tensorflow as tf

    if tfds_name is None:
        (x_train, y_train), (x_test, y_test) = load_digits()
        images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        buffer_size = len(images)
    else:
        dataset = _tfds_dataset(
            name, tfds_name, split, shuffle, seed, data_dir, bool(download)
        )
        if base_split != "extra":
            dataset = dataset.cache()
        buffer_size = _SHUFFLE_BUFFER

    if shuffle:
        dataset = dataset.shuffle(
            buffer_size, seed=shuffle_seed, reshuffle_each_iteration=True
        )
    if augment:
        # One stateless seed per example, fresh every epoch and reproducible.
        seeds = tf.data.Dataset.random(
            seed=augment_seed, rerandomize_each_iteration=True
        )
        dataset = tf.data.Dataset.zip((dataset, seeds.batch(2)))
        dataset = dataset.map(
            lambda example, element_seed: (
                _random_crop_flip(example[0], element_seed, padding, flip),
                example[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _random_crop_flip(image, seed, padding, flip):
    """Zero-pad by `padding`, crop back to the original size, maybe flip."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def _to_float(images, labels):
    import tensorflow as tf

    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32), tf.cast(labels, tf.int32)


def _tfds_dataset(name, tfds_name, split, shuffle_files, seed, data_dir, download):
    """`(uint8 image, label)` examples of a tfds split, downloading if asked."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(tfds_name, data_dir=data_dir)
    read_config = tfds.ReadConfig(shuffle_seed=seed)

    def as_dataset():
        return builder.as_dataset(
            split=split,
            as_supervised=True,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )

    try:
        return as_dataset()
    except AssertionError:  # tfds' "could not find data" error
        if builder.is_prepared():
            raise
    where = builder.data_dir
    if not download:
        raise FileNotFoundError(
            f"No prepared copy of {name!r} (tfds {tfds_name!r}) in {where} and "
            "`download=False`. Pass `download=True` to download it, or prepare "
            f"a copy elsewhere.\n{_offline_recipe(name, tfds_name)}"
        )
    reason = _probe_download(builder)
    if reason is None:
        try:
            builder.download_and_prepare()
        except Exception as error:
            if not _is_network_error(error):
                raise
            reason = f"{type(error).__name__}: {error}"
    if reason is not None:
        raise ConnectionError(
            f"{name!r} (tfds {tfds_name!r}) is not in {where} and could not be "
            "downloaded; this machine seems to have no network access "
            f"({reason}).\n{_offline_recipe(name, tfds_name)}"
        )
    return as_dataset()


def _probe_download(builder):
    """None if the first download server answers, else why it does not.

    tfds retries a failed download for minutes; one short request tells
    quickly whether the server can be reached at all.
    """
    import requests

    try:
        urls = [u for u in builder.url_infos or () if u.startswith("http")]
    except Exception:  # no checksums file: let tfds try
        return None
    if not urls:
        return None
    try:
        requests.head(urls[0], timeout=_PROBE_TIMEOUT, allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as error:
        return f"cannot reach {urls[0]}: {type(error).__name__}"
    return None


def _is_network_error(error):
    import requests
    import tensorflow_datasets as tfds

    network_errors = (requests.RequestException, ConnectionError, TimeoutError)
    return isinstance(error, network_errors + (tfds.download.DownloadError,))


def _offline_recipe(name, tfds_name):
    return (
        "Prepare the data on a machine with internet access, copy the folder, "
        "and point `data_dir` at the copy:\n"
        "  # on a machine with internet access (same tensorflow-datasets "
        "version):\n"
        '  python -c "import tensorflow_datasets as tfds; tfds.builder('
        f"'{tfds_name}', data_dir='/path/to/tfds').download_and_prepare()\"\n"
        f"  # copy /path/to/tfds (it holds {tfds_name}/<version>/) to this "
        "machine, then:\n"
        f"  kr.datasets.load({name!r}, data_dir='/path/to/tfds')\n"
        "Or set the TFDS_DATA_DIR environment variable to that folder."
    )
