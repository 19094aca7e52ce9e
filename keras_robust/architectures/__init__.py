"""Classifier architectures returning logits."""

from keras_robust.architectures.dm_preact_resnet import DMPreActResNet
from keras_robust.architectures.dm_wide_resnet import DMWideResNet
from keras_robust.architectures.preact_resnet import PreActResNet18
from keras_robust.architectures.resnet import ResNet18
from keras_robust.architectures.small_cnn import SmallCNN
from keras_robust.architectures.torch_weights import TorchWeightsReport
from keras_robust.architectures.torch_weights import load_torch_weights
from keras_robust.architectures.torch_weights import save_torch_weights
from keras_robust.architectures.weight_decay import with_coupled_weight_decay
from keras_robust.architectures.wide_resnet import WideResNet
from keras_robust.architectures.wide_resnet import WideResNet28_10
from keras_robust.architectures.wide_resnet import WideResNet34_10

__all__ = [
    "DMPreActResNet",
    "DMWideResNet",
    "PreActResNet18",
    "ResNet18",
    "SmallCNN",
    "TorchWeightsReport",
    "WideResNet",
    "WideResNet28_10",
    "WideResNet34_10",
    "load_torch_weights",
    "save_torch_weights",
    "with_coupled_weight_decay",
]
