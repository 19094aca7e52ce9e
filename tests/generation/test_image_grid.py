"""image_grid / save_image_grid: placement, padding, files."""

import numpy as np
import pytest

import keras_robust as kr


def test_images_land_row_by_row():
    images = np.stack([np.full((2, 3, 1), i / 10, "float32") for i in range(5)])
    grid = kr.generation.image_grid(images, nrow=2, padding=1, pad_value=1.0)
    assert grid.shape == (3 * 3 + 1, 2 * 4 + 1, 1)
    for index in range(5):
        row, column = divmod(index, 2)
        top, left = 1 + 3 * row, 1 + 4 * column
        np.testing.assert_array_equal(
            grid[top : top + 2, left : left + 3], np.float32(index / 10)
        )
    # The unused last cell and the padding keep the pad value.
    np.testing.assert_array_equal(grid[7:9, 5:8], 1.0)
    np.testing.assert_array_equal(grid[0], 1.0)


def test_save_image_grid_writes_a_png(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    images = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype("float32")
    path = kr.generation.save_image_grid(
        images, tmp_path / "grid.png", nrow=4, row_labels=list("abcde")
    )
    picture = plt.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 5 * 8


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="`images`"):
        kr.generation.image_grid(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="`nrow`"):
        kr.generation.image_grid(np.zeros((2, 8, 8, 1)), nrow=0)
    with pytest.raises(ValueError, match="`padding`"):
        kr.generation.image_grid(np.zeros((2, 8, 8, 1)), padding=-1)
