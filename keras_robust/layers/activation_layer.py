"""Build an activation layer from a name, a callable or a layer."""

import keras

from keras_robust.layers.parametric_softplus import ParametricSoftplus
from keras_robust.layers.smooth_grad_relu import SmoothGradReLU
from keras_robust.layers.smooth_relu import SmoothReLU


@keras.saving.register_keras_serializable(package="keras_robust")
def gelu_tanh(x):
    """GELU with the tanh approximation, the variant the SAT paper uses."""
    return keras.activations.gelu(x, approximate=True)


LAYER_ACTIVATIONS = {
    "smooth_relu": SmoothReLU,
    "parametric_softplus": ParametricSoftplus,
    "smooth_grad_relu": SmoothGradReLU,
}

# Names that differ from Keras': "gelu" is the tanh approximation here.
FUNCTION_ACTIVATIONS = {"gelu": gelu_tanh, "gelu_exact": "gelu"}

SAT_ACTIVATIONS = (
    "relu",
    "silu",
    "gelu",
    "elu",
    "softplus",
    "mish",
    *LAYER_ACTIVATIONS,
)


def activation_layer(activation, name=None):
    """A new layer computing `activation`, for one activation site.

    Every call returns a fresh layer, so learnable activations
    (`SmoothReLU`'s b) get their own weights at each site.

    Args:
        activation: one of
            - a name: "smooth_relu", "parametric_softplus", "smooth_grad_relu"
              (keras_robust's layers with their defaults), "gelu" (tanh
              approximation, as in SAT; "gelu_exact" for the erf form), or
              any Keras activation name ("relu", "silu", "elu", "softplus",
              "mish", ...);
            - a Keras layer instance: copied from its config (weights are not
              shared), e.g. `kr.layers.SmoothGradReLU(smooth_for="attack")`;
            - a callable `x -> y` (register it with
              `keras.saving.register_keras_serializable` to save the model).
        name: name of the new layer (None for an automatic one).

    Returns:
        A `keras.layers.Layer`.

    Example:
    >>> kr.layers.activation_layer("smooth_relu", name="act1")
    """
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()
        config.pop("name", None)
        if name is not None:
            config["name"] = name
        return type(activation).from_config(config)
    if isinstance(activation, str):
        if activation in LAYER_ACTIVATIONS:
            return LAYER_ACTIVATIONS[activation](name=name)
        function = FUNCTION_ACTIVATIONS.get(activation, activation)
        if isinstance(function, str):
            try:
                keras.activations.get(function)
            except ValueError:
                raise ValueError(
                    f"`activation` {activation!r} is not a known activation: use "
                    f"one of {', '.join(SAT_ACTIVATIONS)}, another Keras "
                    "activation name, a callable or a layer."
                ) from None
        return keras.layers.Activation(function, name=name)
    if callable(activation):
        return keras.layers.Activation(activation, name=name)
    raise TypeError(
        "`activation` must be an activation name, a callable or a Keras layer, "
        f"got {type(activation).__name__}."
    )
