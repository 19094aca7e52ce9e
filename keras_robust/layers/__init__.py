"""Smooth activations (Smooth Adversarial Training) and the activation swap."""

from keras_robust.layers.activation_layer import SAT_ACTIVATIONS
from keras_robust.layers.activation_layer import activation_layer
from keras_robust.layers.activation_layer import gelu_tanh
from keras_robust.layers.attack_phase import attack_phase
from keras_robust.layers.attack_phase import in_attack_phase
from keras_robust.layers.parametric_softplus import ParametricSoftplus
from keras_robust.layers.replace_activations import replace_activations
from keras_robust.layers.smooth_grad_relu import SmoothGradReLU
from keras_robust.layers.smooth_relu import SmoothReLU

__all__ = [
    "SAT_ACTIVATIONS",
    "ParametricSoftplus",
    "SmoothGradReLU",
    "SmoothReLU",
    "activation_layer",
    "attack_phase",
    "gelu_tanh",
    "in_attack_phase",
    "replace_activations",
]
