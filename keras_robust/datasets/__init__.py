"""Data sets as float32 NHWC images in [0, 1] with integer labels."""

from keras_robust.datasets.digits import load_digits
from keras_robust.datasets.generated import GeneratedData
from keras_robust.datasets.generated import load_generated
from keras_robust.datasets.generated import pseudo_label
from keras_robust.datasets.load import load
from keras_robust.datasets.mix import mix

__all__ = [
    "GeneratedData",
    "load",
    "load_digits",
    "load_generated",
    "mix",
    "pseudo_label",
]
