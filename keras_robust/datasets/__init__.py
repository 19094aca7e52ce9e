"""Data sets as float32 NHWC images in [0, 1] with integer labels."""

from keras_robust.datasets.digits import load_digits
from keras_robust.datasets.load import load

__all__ = ["load", "load_digits"]
