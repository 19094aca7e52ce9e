"""Classifier architectures returning logits."""

from keras_robust.architectures.small_cnn import SmallCNN

__all__ = ["SmallCNN"]
