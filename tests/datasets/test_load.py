"""`kr.datasets.load`: batches, seeds, augmentation, offline errors and `fit`.

The tfds data sets run offline under `tfds.testing.mock_data`, which yields
random uint8 images of the real shapes (split names and sizes are ignored).
One test prepares a real tfds copy of CIFAR-10 from fake local files.
"""

import importlib
import time

import keras
import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds

import keras_robust as kr

load_module = importlib.import_module("keras_robust.datasets.load")

NUM_EXAMPLES = 24


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        yield


def epoch(dataset):
    """One pass over `dataset` as numpy `(images, labels)` of all batches."""
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    return (
        np.concatenate([x for x, _ in batches]),
        np.concatenate([y for _, y in batches]),
        [len(y) for _, y in batches],
    )


@pytest.mark.parametrize(
    "name, split, classes",
    [("cifar10", "train", 10), ("cifar100", "test", 100), ("svhn", "extra", 10)],
)
def test_tfds_batches_have_shapes_dtypes_and_ranges(mock_tfds, name, split, classes):
    dataset = kr.datasets.load(name, split, batch_size=10, seed=0)
    x, y, sizes = epoch(dataset)
    assert sizes == [10, 10, 4]
    assert x.shape == (NUM_EXAMPLES, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (NUM_EXAMPLES,) and y.dtype == np.int32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert y.min() >= 0 and y.max() < classes
    dropped = kr.datasets.load(name, split, batch_size=10, drop_remainder=True)
    assert epoch(dropped)[2] == [10, 10]


def test_digits_equal_load_digits_arrays():
    (x_train, y_train), (x_test, y_test) = kr.datasets.load_digits()
    train = kr.datasets.load("digits", "train", 500, augment=False, shuffle=False)
    x, y, sizes = epoch(train)
    assert sizes == [500, 500, 347]
    np.testing.assert_array_equal(x, x_train)
    np.testing.assert_array_equal(y, y_train)
    assert x.dtype == np.float32 and y.dtype == np.int32
    # The test split is neither shuffled nor augmented by default.
    x, y, _ = epoch(kr.datasets.load("digits", "test", 128))
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)


def test_digits_train_split_is_shuffled_but_not_augmented_by_default():
    (x_train, y_train), _ = kr.datasets.load_digits()
    x, y, _ = epoch(kr.datasets.load("digits", batch_size=256, seed=0))
    assert x.shape == x_train.shape and x.min() >= 0.0 and x.max() <= 1.0
    assert not np.array_equal(y, y_train)
    np.testing.assert_array_equal(np.sort(y), np.sort(y_train))
    # Every image is an unchanged training image, in another order.
    flat = x_train.reshape(len(x_train), -1)
    order = np.lexsort(flat.T)
    shuffled = x.reshape(len(x), -1)
    np.testing.assert_array_equal(shuffled[np.lexsort(shuffled.T)], flat[order])


def test_seed_gives_identical_epochs_and_other_seeds_differ(mock_tfds):
    def two_epochs(seed):
        dataset = kr.datasets.load("cifar10", batch_size=8, seed=seed)
        return [epoch(dataset)[:2] for _ in range(2)]

    first, again, other = two_epochs(3), two_epochs(3), two_epochs(4)
    for (x, y), (x_again, y_again) in zip(first, again):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)
    # Every epoch draws a new order and new augmentations...
    assert not np.array_equal(first[0][0], first[1][0])
    # ...and another seed gives other ones.
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][1], other[0][1])


def crop_and_flip_matches(original, augmented, padding):
    """All (dy, dx, flipped) that turn `original` into `augmented`."""
    height, width = original.shape[:2]
    padded = np.pad(original, [(padding, padding), (padding, padding), (0, 0)])
    matches = set()
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[top : top + height, left : left + width]
            for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
                if np.array_equal(candidate, augmented):
                    matches.add((top - padding, left - padding, flipped))
    return matches


@pytest.mark.parametrize("name, flips", [("cifar10", True), ("svhn", False)])
def test_augmentation_is_zero_padded_crop_and_flip(mock_tfds, name, flips):
    plain = kr.datasets.load(
        name, batch_size=NUM_EXAMPLES, augment=False, shuffle=False
    )
    x, y, _ = epoch(plain)
    augmented = kr.datasets.load(
        name, batch_size=NUM_EXAMPLES, augment=True, shuffle=False, seed=1
    )
    x_aug, y_aug, _ = epoch(augmented)
    np.testing.assert_array_equal(y_aug, y)
    assert x_aug.shape == x.shape and x_aug.min() >= 0.0 and x_aug.max() <= 1.0
    # Random images: each augmented image is one shift (with zero fill) of
    # its original, possibly mirrored; a mirror cannot pass for a shift.
    matches = [crop_and_flip_matches(a, b, 4) for a, b in zip(x, x_aug)]
    assert all(len(m) == 1 for m in matches)
    (dy, dx, flipped) = zip(*(m.pop() for m in matches))
    assert np.any(np.array(dy) != 0) and np.any(np.array(dx) != 0)
    assert max(map(abs, dy + dx)) <= 4
    assert any(flipped) == flips


def test_digits_augmentation_shifts_by_one_pixel_without_flip():
    plain = kr.datasets.load("digits", batch_size=200, augment=False, shuffle=False)
    augmented = kr.datasets.load(
        "digits", batch_size=200, augment=True, shuffle=False, seed=0
    )
    (x, _), (x_aug, _) = next(iter(plain)), next(iter(augmented))
    x, x_aug = x.numpy(), x_aug.numpy()
    assert x_aug.shape == (200, 8, 8, 1)
    assert not np.array_equal(x, x_aug)
    for original, image in zip(x, x_aug):
        matches = crop_and_flip_matches(original, image, 1)
        assert any(not flipped for _, _, flipped in matches)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "mnist"}, ValueError, "`name` must be one of 'cifar10', 'cifar100'"),
        ({"name": None}, ValueError, "`name` must be one of"),
        ({"name": "cifar10", "split": "extra"}, ValueError, "'train', 'test'"),
        ({"name": "svhn", "split": "valid"}, ValueError, "'train', 'test', 'extra'"),
        ({"name": "digits", "split": "train[:10]"}, ValueError, "`split` for 'digits'"),
        ({"name": "digits", "batch_size": 0}, ValueError, "`batch_size`"),
        ({"name": "digits", "batch_size": 2.5}, TypeError, "`batch_size`"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.datasets.load(**kwargs)


def test_names_are_case_insensitive_and_slices_are_allowed(mock_tfds):
    dataset = kr.datasets.load("CIFAR10", "train[:50%]", batch_size=4)
    assert tuple(dataset.element_spec[0].shape) == (None, 32, 32, 3)


def test_missing_data_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False") as info:
        kr.datasets.load("cifar10", data_dir=str(tmp_path), download=False)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "download_and_prepare()" in message
    assert "data_dir='/path/to/tfds'" in message


def test_no_network_fails_fast_with_a_recipe(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    def no_download(*args, **kwargs):
        pytest.fail("tfds must not start a download that cannot succeed")

    monkeypatch.setattr(requests.Session, "request", offline)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="no network access") as info:
        kr.datasets.load("svhn", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "ufldl.stanford.edu" in message
    assert "tfds.builder('svhn_cropped', data_dir='/path/to/tfds')" in message
    assert "kr.datasets.load('svhn', data_dir='/path/to/tfds')" in message


def test_download_errors_become_connection_errors(tmp_path, monkeypatch):
    def failing_download(*args, **kwargs):
        raise tfds.download.DownloadError("Failed to get url: 503")

    monkeypatch.setattr(load_module, "_probe_download", lambda builder: None)
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", failing_download
    )
    with pytest.raises(ConnectionError, match="Failed to get url: 503"):
        kr.datasets.load("cifar100", data_dir=str(tmp_path))


def write_fake_cifar10(folder, rng):
    """CIFAR-10's binary format (label byte + 3072 pixel bytes per image)."""
    batches = folder / "cifar-10-batches-bin"
    batches.mkdir()
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for file in files:
        records = rng.integers(0, 256, (20, 1 + 32 * 32 * 3), dtype=np.uint8)
        records[:, 0] %= 10
        records.tofile(batches / file)
    names = "airplane automobile bird cat deer dog frog horse ship truck"
    (batches / "batches.meta.txt").write_text("\n".join(names.split()) + "\n")


def test_prepared_copy_in_data_dir_is_read_offline(tmp_path, monkeypatch):
    # Prepare a real tfds copy from local files, as a machine online would.
    write_fake_cifar10(tmp_path, np.random.default_rng(0))
    monkeypatch.setattr(load_module, "_probe_download", lambda builder: None)
    monkeypatch.setattr(
        tfds.download.DownloadManager,
        "download_and_extract",
        lambda self, url: str(tmp_path),
    )
    data_dir = str(tmp_path / "tfds")
    kr.datasets.load("cifar10", data_dir=data_dir)
    # The prepared folder is then used without any download.
    monkeypatch.undo()
    x, y, sizes = epoch(
        kr.datasets.load("cifar10", batch_size=32, data_dir=data_dir, download=False)
    )
    assert sizes == [32, 32, 32, 4]
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() >= 0.0 and x.max() <= 1.0 and y.max() < 10
    held_out = kr.datasets.load("cifar10", "train[90:]", data_dir=data_dir)
    assert epoch(held_out)[2] == [10]


def test_fit_consumes_the_dataset(mock_tfds):
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    dataset = kr.datasets.load("cifar10", batch_size=8, seed=0)
    steps = []
    count = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: steps.append(batch)
    )
    history = model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=1,
        shuffle=False,
        callbacks=[count],
        verbose=0,
    )
    assert steps == [0]
    assert np.isfinite(history.history["loss"][0])
