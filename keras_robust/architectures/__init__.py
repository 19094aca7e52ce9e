"""Classifier architectures returning logits."""

from keras_robust.architectures.preact_resnet import PreActResNet18
from keras_robust.architectures.resnet import ResNet18
from keras_robust.architectures.small_cnn import SmallCNN
from keras_robust.architectures.weight_decay import with_coupled_weight_decay
from keras_robust.architectures.wide_resnet import WideResNet
from keras_robust.architectures.wide_resnet import WideResNet28_10
from keras_robust.architectures.wide_resnet import WideResNet34_10

__all__ = [
    "PreActResNet18",
    "ResNet18",
    "SmallCNN",
    "WideResNet",
    "WideResNet28_10",
    "WideResNet34_10",
    "with_coupled_weight_decay",
]
