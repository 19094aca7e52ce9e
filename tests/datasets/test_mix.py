"""`kr.datasets.mix`, `load_generated` and `pseudo_label` on small files we write.

Real examples have labels 0..4 and extra ones 5..9, and every image encodes
its row index in its pixels, so a batch tells where each image came from.
"""

import tracemalloc
import zipfile

import keras
import numpy as np
import pytest

import keras_robust as kr

REAL = 60
EXTRA = 500


def indexed_images(count, offset=0, shape=(4, 4, 1)):
    """uint8 images whose first pixel is the row index mod 256, second index // 256."""
    images = np.zeros((count, *shape), dtype=np.uint8)
    rows = np.arange(count) + offset
    images[:, 0, 0, 0] = rows % 256
    images[:, 0, 1, 0] = rows // 256
    images[:, 1:, :, :] = 77
    return images


def row_of(image):
    pixels = np.rint(np.asarray(image) * 255).astype(int)
    return pixels[0, 0, 0] + 256 * pixels[0, 1, 0]


@pytest.fixture(scope="module")
def real():
    images = indexed_images(REAL).astype(np.float32) / 255.0
    labels = np.arange(REAL) % 5
    return images, labels


@pytest.fixture(scope="module")
def extra_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("generated") / "extra.npz"
    # Labels follow the row, so a drawn image can be checked against the file.
    np.savez(path, image=indexed_images(EXTRA), label=5 + np.arange(EXTRA) % 5)
    return str(path)


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


@pytest.mark.parametrize(
    "fraction, batch_size, expected_extra", [(0.7, 20, 14), (0.3, 16, 4), (0.0, 8, 0)]
)
def test_every_batch_has_exactly_the_share(
    real, extra_path, fraction, batch_size, expected_extra
):
    extra = kr.datasets.load_generated(extra_path, num_classes=10)
    dataset = kr.datasets.mix(real, extra, fraction, batch_size, seed=1)
    result = batches(dataset)
    assert len(result) == -(-REAL // batch_size)  # the reference's epoch
    for x, y in result:
        assert x.shape == (batch_size, 4, 4, 1) and x.dtype == np.float32
        assert y.dtype == np.int32
        assert int(np.sum(y >= 5)) == expected_extra == int(batch_size * fraction)
        for image, label in zip(x, y):
            # Each image is the row of its source whose label it carries.
            assert label % 5 == row_of(image) % 5


def test_real_images_are_a_permutation_per_pass_and_batches_are_mixed(real, extra_path):
    # 10 real images per batch, 6 batches: exactly one pass over the 60.
    dataset = kr.datasets.mix(real, extra_path, 0.5, 20, steps_per_epoch=6, seed=0)
    first, second = batches(dataset), batches(dataset)
    for epoch in (first, second):
        rows = [row_of(img) for x, y in epoch for img, lab in zip(x, y) if lab < 5]
        assert sorted(rows) == list(range(REAL))
    order = lambda epoch: [row_of(img) for x, _ in epoch for img in x]  # noqa: E731
    assert order(first) != order(second)  # reshuffled every epoch
    # The sources are interleaved inside a batch, not stacked.
    assert any(not np.all(np.diff((y >= 5).astype(int)) >= 0) for _, y in first)


def test_extra_draws_cover_the_file_uniformly_with_replacement(real, extra_path):
    dataset = kr.datasets.mix(real, extra_path, 0.9, 50, steps_per_epoch=40, seed=3)
    rows = np.array(
        [row_of(img) for x, y in batches(dataset) for img, lab in zip(x, y) if lab >= 5]
    )
    assert len(rows) == 40 * 45
    # 1800 draws from 500 rows: repeats must occur, and most rows are seen.
    assert len(np.unique(rows)) < len(rows)
    assert len(np.unique(rows)) > 0.9 * EXTRA * (1 - np.exp(-len(rows) / EXTRA))
    counts = np.bincount(rows // 100, minlength=5)
    assert counts.min() > 0.7 * counts.mean()


def test_seeded_pipelines_repeat_and_others_differ(real, extra_path):
    make = lambda seed: batches(  # noqa: E731
        kr.datasets.mix(real, extra_path, 0.7, 20, augment=True, padding=1, seed=seed)
    )
    a, b, c = make(5), make(5), make(6)
    assert all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(a, b)
    )
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_two_views_pair_row_i_with_row_i_plus_batch(real, extra_path):
    # padding 0: the only augmentation is the flip, so the two views of an
    # image are equal or mirror images of each other.
    dataset = kr.datasets.mix(
        real, extra_path, 0.5, 10, augment=True, padding=0, views=2, seed=0
    )
    flipped = 0
    for x, y in batches(dataset):
        assert x.shape[0] == 20 and np.array_equal(y[:10], y[10:])
        for first, second in zip(x[:10], x[10:]):
            same = np.array_equal(first, second)
            mirrored = np.array_equal(first, second[:, ::-1])
            assert same or mirrored
            flipped += not same
    assert flipped > 0


def test_load_generated_memory_maps_without_reading(tmp_path):
    path = tmp_path / "big.npz"
    count = 20_000  # 61 MB of 32x32x3 images
    np.savez(
        path,
        image=np.full((count, 32, 32, 3), 9, dtype=np.uint8),
        label=np.arange(count) % 10,
    )
    tracemalloc.start()
    try:
        extra = kr.datasets.load_generated(
            path, image_shape=(32, 32, 3), num_classes=10
        )
        real = (np.zeros((64, 32, 32, 3), np.float32), np.zeros(64, np.int32))
        x, y = next(iter(kr.datasets.mix(real, extra, 0.7, 64, seed=0)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(extra.images, np.memmap) and isinstance(extra.labels, np.memmap)
    assert extra.images.shape == (count, 32, 32, 3) and len(extra) == count
    assert peak < 12e6  # a few MB of reads, not the 61 MB file
    assert float(np.max(x.numpy())) == pytest.approx(9 / 255)


def test_pseudo_labels_are_the_classifier_argmax(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (37, 4, 4, 1), dtype=np.uint8)
    classifier = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    expected = np.argmax(
        keras.ops.convert_to_numpy(classifier(images.astype("float32") / 255.0)),
        axis=-1,
    )
    labels = kr.datasets.pseudo_label(classifier, images, batch_size=8)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int32
    path = tmp_path / "unlabelled.npz"
    np.savez(path, image=images)
    with pytest.raises(ValueError, match="pseudo_label"):
        kr.datasets.load_generated(path)
    on_disk = kr.datasets.pseudo_label(
        classifier,
        kr.datasets.load_generated(path, labels=labels).images,
        10,
        path=tmp_path / "labels.npy",
    )
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), expected)
    extra = kr.datasets.load_generated(path, labels=on_disk, num_classes=3)
    np.testing.assert_array_equal(extra.labels, expected)


def test_fit_on_a_mixed_pipeline(real, extra_path):
    classifier = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model = kr.models.TRADES(classifier, epsilon=0.1, step_size=0.05, steps=1)
    model.compile(optimizer="sgd")
    history = model.fit(
        kr.datasets.mix(real, extra_path, 0.7, 20, seed=0), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


# ---- bad input ----------------------------------------------------------------


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_extra_fraction_outside_unit_interval(real, extra_path, fraction):
    with pytest.raises(ValueError, match="extra_fraction"):
        kr.datasets.mix(real, extra_path, fraction, 20)


def test_extra_fraction_not_a_number(real, extra_path):
    with pytest.raises(TypeError, match="extra_fraction"):
        kr.datasets.mix(real, extra_path, "0.7", 20)


def test_generated_file_of_another_shape(real, tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, image=np.zeros((5, 8, 8, 1), np.uint8), label=np.zeros(5, int))
    with pytest.raises(ValueError, match="image_shape"):
        kr.datasets.load_generated(path, image_shape=(4, 4, 1))
    with pytest.raises(ValueError, match="must match"):
        kr.datasets.mix(real, str(path), 0.5, 10)


@pytest.mark.parametrize("bad", [10, -1])
def test_generated_labels_out_of_range(tmp_path, bad):
    path = tmp_path / "labels.npz"
    labels = np.zeros(5, int)
    labels[3] = bad
    np.savez(path, image=np.zeros((5, 4, 4, 1), np.uint8), label=labels)
    with pytest.raises(ValueError, match=rf"`label` holds {bad}.*num_classes"):
        kr.datasets.load_generated(path, num_classes=10)


def test_generated_file_compressed_or_not_uint8(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(
        path, image=np.zeros((5, 4, 4, 1), np.uint8), label=np.zeros(5, int)
    )
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("image.npy").compress_type != zipfile.ZIP_STORED
    with pytest.raises(ValueError, match="np.savez"):
        kr.datasets.load_generated(path)
    floats = tmp_path / "floats.npz"
    np.savez(floats, image=np.zeros((5, 4, 4, 1), np.float32), label=np.zeros(5, int))
    with pytest.raises(ValueError, match="uint8"):
        kr.datasets.load_generated(floats)
    with pytest.raises(ValueError, match="not a `.npz`"):
        kr.datasets.load_generated(__file__)


def test_views_need_augmentation(real, extra_path):
    with pytest.raises(ValueError, match="augment=True"):
        kr.datasets.mix(real, extra_path, 0.5, 10, views=2)
