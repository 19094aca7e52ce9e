"""A sheet of images: one row per class, for looking at samples."""

import numbers

import numpy as np

from keras_robust.utils import plotting
from keras_robust.utils import validation


def image_grid(images, nrow=None, padding=1, pad_value=1.0):
    """Tiles images into one array, row by row.

    Args:
        images: (n, H, W, C) float images in [0, 1] (C is 1 or 3).
        nrow: images per row; default ceil(sqrt(n)). For a per-class sheet
            of k samples per class sorted by class, use `nrow=k`.
        padding: pixels between images.
        pad_value: value of the padding pixels.

    Returns:
        float32 array (rows * (H + padding) + padding, nrow * (W + padding)
        + padding, C).
    """
    try:
        images = np.asarray(images, dtype="float32")
    except (TypeError, ValueError):
        raise TypeError(
            f"`images` must be a numeric array (n, H, W, C), got {type(images).__name__}."
        ) from None
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            "`images` must be a non-empty batch (n, H, W, C) with C = 1 or 3; "
            f"got shape {images.shape}."
        )
    count, height, width, channels = images.shape
    if nrow is None:
        nrow = int(np.ceil(np.sqrt(count)))
    nrow = validation.positive_integer(nrow, "nrow")
    if (
        isinstance(padding, bool)
        or not isinstance(padding, numbers.Integral)
        or padding < 0
    ):
        raise ValueError(f"`padding` must be an integer >= 0, got {padding!r}.")
    if isinstance(pad_value, bool) or not isinstance(pad_value, numbers.Real):
        raise TypeError(f"`pad_value` must be a number, got {pad_value!r}.")
    columns = min(nrow, count)
    rows = -(-count // nrow)
    grid = np.full(
        (
            rows * (height + padding) + padding,
            columns * (width + padding) + padding,
            channels,
        ),
        pad_value,
        dtype="float32",
    )
    for index, image in enumerate(images):
        row, column = divmod(index, nrow)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_image_grid(images, path, nrow=None, padding=1, scale=None, row_labels=None):
    """Saves images as one PNG sheet (e.g. a row of samples per class).

    Args:
        images: (n, H, W, C) float images in [0, 1].
        path: output file; the format follows the extension (.png, .pdf).
        nrow: images per row (see `image_grid`).
        padding: pixels between images.
        scale: screen pixels per image pixel; default makes each image about
            64 pixels wide, so 8x8 digits are readable.
        row_labels: optional text per row (e.g. class names), drawn left.

    Returns:
        the path written.

    Example:
    >>> images = sampler.sample(np.repeat(np.arange(10), 8))
    >>> kr.generation.save_image_grid(images, "samples.png", nrow=8)
    """
    plt = plotting.require_matplotlib()
    grid = np.clip(image_grid(images, nrow=nrow, padding=padding), 0.0, 1.0)
    width = np.asarray(images).shape[2]
    if scale is None:
        scale = max(1, int(round(64 / width)))
    dpi = 100
    margin = 0.6 if row_labels is not None else 0.0
    figure = plt.figure(
        figsize=(grid.shape[1] * scale / dpi + margin, grid.shape[0] * scale / dpi),
        dpi=dpi,
    )
    axes = figure.add_axes(
        [margin / figure.get_figwidth(), 0, 1 - margin / figure.get_figwidth(), 1]
    )
    shown = grid[..., 0] if grid.shape[-1] == 1 else grid
    axes.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_axis_off()
    if row_labels is not None:
        height = np.asarray(images).shape[1]
        for row, text in enumerate(row_labels):
            centre = padding + row * (height + padding) + height / 2
            axes.text(
                -padding - 1, centre, str(text), ha="right", va="center", fontsize=9
            )
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
