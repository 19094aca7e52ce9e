"""Data sets as float32 NHWC images in [0, 1] with integer labels."""

from keras_robust.datasets.digits import load_digits

__all__ = ["load_digits"]
