"""Generated / extra training images, memory-mapped from `.npz` files.

The published generated-data sets of the leading robust-training recipes
(Gowal et al. 2021, Rebuffi et al. 2021, Wang et al. 2023: 1M to 50M images)
are `.npz` files written by `np.savez` with a uint8 `image` array (N, H, W, C)
and an integer `label` array (N,) (DM-Improves-AT `edm/combine_data.py`,
line 33; read by `core/data/semisup.py`, lines 69-73). `np.savez` stores its
members uncompressed, so each array is a contiguous run of bytes inside the
zip file and can be memory-mapped: nothing is read until a batch asks for
its rows. `np.load(path)["image"]` (what the reference does) would read the
whole 3 GB (1M) to 150 GB (50M) array into memory.
"""

import struct
import zipfile

import numpy as np

from keras_robust.utils import validation

# Rows checked per chunk when validating labels of a memory-mapped file.
_CHUNK = 1 << 20
# Size of a zip local file header before its name and extra field.
_LOCAL_HEADER = 30
_LOCAL_SIGNATURE = b"PK\x03\x04"


class GeneratedData:
    """Images (uint8 NHWC) and integer labels, typically memory-mapped.

    Use `load_generated` to open a file; `kr.datasets.mix` streams batches
    from it. `images` and `labels` are NumPy arrays or `np.memmap`s; rows
    are read only when indexed.

    Args:
        images: uint8 array of shape (N, H, W, C).
        labels: integer array of shape (N,).
    """

    def __init__(self, images, labels):
        self.images = images
        self.labels = labels

    def __len__(self):
        return len(self.images)

    @property
    def image_shape(self):
        return tuple(self.images.shape[1:])

    def take(self, indices):
        """`(images, labels)` of the rows `indices` (read from disk now)."""
        indices = np.asarray(indices)
        order = np.argsort(indices, kind="stable")
        # Sorted reads touch the file front to back (fewer page faults).
        rows = indices[order]
        images = np.empty((len(rows), *self.image_shape), dtype=self.images.dtype)
        labels = np.empty((len(rows),), dtype=np.int32)
        images[order] = self.images[rows]
        labels[order] = self.labels[rows]
        return images, labels


def _npz_member(path, archive, name):
    """A read-only `np.memmap` of the array `name` stored in the `.npz`."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(
            f"`path` {path!r}: the array {name!r} is compressed (written by "
            "`np.savez_compressed`), so it cannot be memory-mapped. Rewrite the "
            "file with `np.savez(path, image=..., label=...)` (uncompressed, as "
            "the published generated-data files are)."
        )
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(_LOCAL_HEADER)
        if header[:4] != _LOCAL_SIGNATURE:
            raise ValueError(f"`path` {path!r} is not a valid `.npz` (zip) file.")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        file.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        offset = file.tell()
    if dtype.hasobject:
        raise ValueError(
            f"`path` {path!r}: the array {name!r} holds Python objects; "
            "generated-data files hold numeric arrays only."
        )
    if not shape or int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(
        path,
        dtype=dtype,
        mode="r",
        offset=offset,
        shape=shape,
        order="F" if fortran_order else "C",
    )


def _check_images(images, image_shape, where):
    if images.ndim != 4:
        raise ValueError(
            f"{where}: `image` must have shape (N, height, width, channels), got "
            f"shape {images.shape}."
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"{where}: `image` must be uint8 (pixels 0..255, as the published "
            f"generated-data files are), got {images.dtype}."
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{where}: its images have shape {tuple(images.shape[1:])}, but "
            f"`image_shape` is {tuple(image_shape)} (e.g. CIFAR-10 is (32, 32, 3))."
        )


def _check_labels(labels, count, num_classes, where):
    if labels.ndim != 1 or len(labels) != count:
        raise ValueError(
            f"{where}: `label` must have shape ({count},), one label per image, "
            f"got shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{where}: `label` must hold integer class indices, got {labels.dtype}."
        )
    if num_classes is None:
        return
    # Chunked, so that a memory-mapped array of 50M labels stays on disk.
    for start in range(0, count, _CHUNK):
        chunk = np.asarray(labels[start : start + _CHUNK])
        low, high = int(chunk.min()), int(chunk.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"{where}: `label` holds {bad}, outside [0, {num_classes}) for "
                f"`num_classes`={num_classes}."
            )


def load_generated(path, *, image_shape=None, num_classes=None, labels=None):
    """Opens a generated-data `.npz` file without reading it into memory.

    The file holds `image` (uint8, (N, H, W, C)) and, unless `labels` is
    given, `label` (integers, (N,)), as written by `np.savez` (the format
    of the DeepMind and DM-Improves-AT generated CIFAR-10/100 and SVHN sets).
    Both arrays are memory-mapped: opening a 50M-image file costs no memory,
    and `kr.datasets.mix` reads only the rows of each batch. Checking the
    labels' range reads them once, in chunks of 1M.

    Args:
        path: path of the `.npz` file.
        image_shape: expected (H, W, C) of the images; a mismatch raises.
        num_classes: when given, every label must lie in [0, num_classes).
        labels: labels to use instead of the file's `label` array (e.g.
            pseudo-labels from `pseudo_label` for a file of unlabelled
            images); an integer array of shape (N,).

    Returns:
        A `GeneratedData` with memory-mapped `images` and `labels`.

    Raises:
        ValueError: the file is compressed, lacks `image` (or `label` when
            `labels` is None), or its shapes, dtypes or label range do not
            match `image_shape` / `num_classes`.

    Example:
    >>> extra = kr.datasets.load_generated("1m.npz", image_shape=(32, 32, 3), num_classes=10)
    >>> train = kr.datasets.mix((x_train, y_train), extra, extra_fraction=0.7, batch_size=512)
    """
    path = str(path)
    if num_classes is not None:
        num_classes = validation.positive_integer(num_classes, "num_classes")
    where = f"`path` {path!r}"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, IsADirectoryError) as error:
        raise ValueError(
            f"{where} is not a `.npz` file written by `np.savez` ({error})."
        ) from error
    with archive:
        names = {name[: -len(".npy")] for name in archive.namelist()}
        needed = ("image",) if labels is not None else ("image", "label")
        missing = [name for name in needed if name not in names]
        if missing:
            hint = (
                " For unlabelled images, pass `labels=kr.datasets.pseudo_label(classifier, images)`."
                if missing == ["label"]
                else ""
            )
            raise ValueError(
                f"{where} has no array {missing[0]!r} (it holds {sorted(names)}); "
                f"generated-data files hold `image` and `label`.{hint}"
            )
        images = _npz_member(path, archive, "image")
        if labels is None:
            labels = _npz_member(path, archive, "label")
    _check_images(images, image_shape, where)
    labels = np.asarray(labels) if not isinstance(labels, np.memmap) else labels
    _check_labels(labels, len(images), num_classes, where)
    return GeneratedData(images, labels)


def pseudo_label(classifier, images, batch_size=256, path=None):
    """Labels of unlabelled images: the classifier's most probable class.

    As the recipes label their unlabelled/generated images (Carmon et al.
    2019; Gowal et al. 2021), with a classifier trained on the real data.
    `images` may be a memory-mapped uint8 array (e.g. `GeneratedData.images`
    or `np.load(..., mmap_mode="r")`): it is read `batch_size` rows at a
    time, scaled to [0, 1] and classified in inference mode.

    Args:
        classifier: a Keras model mapping float images in [0, 1] to logits.
        images: uint8 (N, H, W, C) array, or float32 already in [0, 1].
        batch_size: images classified per call.
        path: optional `.npy` path; the labels are then written there as a
            memory-mapped int32 array (for tens of millions of images).

    Returns:
        int32 labels of shape (N,) (an `np.memmap` when `path` is given).

    Example:
    >>> labels = kr.datasets.pseudo_label(teacher, unlabelled.images)
    >>> extra = kr.datasets.load_generated("unlabelled.npz", labels=labels)
    """
    batch_size = validation.positive_integer(batch_size, "batch_size")
    if getattr(images, "ndim", None) != 4:
        raise ValueError(
            f"`images` must have shape (N, height, width, channels), got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    count = len(images)
    if path is None:
        labels = np.empty((count,), dtype=np.int32)
    else:
        labels = np.lib.format.open_memmap(
            str(path), mode="w+", dtype=np.int32, shape=(count,)
        )
    for start in range(0, count, batch_size):
        batch = np.asarray(images[start : start + batch_size])
        batch = (
            batch.astype(np.float32) / 255.0
            if batch.dtype == np.uint8
            else batch.astype(np.float32)
        )
        logits = np.asarray(classifier.predict_on_batch(batch))
        labels[start : start + len(batch)] = np.argmax(logits, axis=-1)
    if path is not None:
        labels.flush()
    return labels
