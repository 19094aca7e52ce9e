"""Swap every ReLU of a functional or sequential model for another activation."""

import keras

from keras_robust.layers.activation_layer import activation_layer


def _is_plain_relu_layer(layer):
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        return (
            config.get("max_value") is None
            and not config.get("negative_slope")
            and not config.get("threshold")
        )
    if isinstance(layer, keras.layers.Activation):
        return _is_relu(layer.activation)
    return False


def _is_relu(function):
    return function is keras.activations.relu


def _has_fused_relu(layer):
    """A Conv/Dense-style layer with `activation="relu"` inside."""
    return (
        not isinstance(layer, keras.layers.Activation)
        and _is_relu(getattr(layer, "activation", None))
        and "activation" in layer.get_config()
    )


def _copy_of(layer, **overrides):
    """A layer from `layer`'s config (with overrides), holding its weights."""
    config = layer.get_config()
    config.update(overrides)
    copy = type(layer).from_config(config)
    if layer.built:
        copy.build_from_config(layer.get_build_config())
        copy.set_weights(layer.get_weights())
    return copy


def _check_rebuildable(model):
    if isinstance(model, keras.Sequential):
        return
    is_functional = type(model).__name__ == "Functional" or (
        getattr(model, "_is_graph_network", False) is True
    )
    if not is_functional:
        raise ValueError(
            "`model` must be a functional or sequential model: "
            "`replace_activations` cannot rebuild the subclassed model "
            f"{type(model).__name__}, whose call() "
            "it cannot see. Give its constructor an `activation` argument (see "
            "`kr.layers.activation_layer`) and build it again with the new "
            "activation, or write it as a functional model."
        )


def replace_activations(model, activation):
    """A copy of `model` with every ReLU replaced by `activation`, weights kept.

    Replaced: `keras.layers.ReLU()` (plain, no max_value/slope/threshold),
    `keras.layers.Activation("relu")`, and `activation="relu"` inside any
    layer (Conv, Dense, ...) — that layer becomes linear and is followed by a
    new activation layer named `<layer>_activation`. ReLU after residual
    additions is a separate layer in Keras, so it is replaced too. Nested
    functional/sequential models are rebuilt recursively. Every other layer
    keeps its config and weights (BatchNorm statistics included), so the new
    model computes the same function wherever the activations agree. Each
    activation site gets its own layer (its own `SmoothReLU` b).

    Args:
        model: a functional or `keras.Sequential` model.
        activation: what `kr.layers.activation_layer` accepts: a name
            ("silu", "gelu", "smooth_relu", "parametric_softplus",
            "smooth_grad_relu", any Keras activation), a layer (copied per
            site, e.g. `kr.layers.SmoothGradReLU(smooth_for="attack")`) or a
            registered callable.

    Returns:
        A new model; `model` is left untouched.

    Raises:
        ValueError: for subclassed models (their call() cannot be rebuilt)
            or an unknown activation.

    Example:
    >>> net = kr.architectures.SmallCNN(10, (32, 32, 3))
    >>> smooth = kr.layers.replace_activations(net, "silu")
    >>> model = kr.models.AT(smooth)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    _check_rebuildable(model)
    activation_layer(activation)  # validates `activation` before any cloning

    unfused = set()  # ids of the copies whose ReLU moved to a new layer

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return replace_activations(layer, activation)
        if _is_plain_relu_layer(layer):
            return activation_layer(activation, name=layer.name)
        if _has_fused_relu(layer):
            copy = _copy_of(layer, activation="linear")
            unfused.add(id(copy))
            return copy
        return _copy_of(layer)

    def fused_activation(layer):
        return activation_layer(activation, name=f"{layer.name}_activation")

    if isinstance(model, keras.Sequential):
        # Sequential layers are listed, not called: insert the activations.
        layers = []
        for layer in model.layers:
            layers.append(clone_layer(layer))
            if _has_fused_relu(layer):
                layers.append(fused_activation(layer))
        if model.built:
            layers.insert(0, keras.Input(batch_shape=model.inputs[0].shape))
        return keras.Sequential(layers, name=model.name)

    def call_layer(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if id(layer) not in unfused:
            return outputs
        return fused_activation(layer)(outputs)

    return keras.models.clone_model(
        model,
        input_tensors=_named_inputs(model),
        clone_function=clone_layer,
        call_function=call_layer,
    )


def _named_inputs(model):
    """New inputs keeping the input layer's name (clone_model renames it)."""
    input_layers = [
        layer for layer in model.layers if isinstance(layer, keras.layers.InputLayer)
    ]
    if len(model.inputs) != 1 or len(input_layers) != 1:
        return None
    tensor = model.inputs[0]
    return keras.Input(
        batch_shape=tensor.shape, dtype=tensor.dtype, name=input_layers[0].name
    )
