"""Which variables hold random state: the states of Keras `SeedGenerator`s."""

import keras


def is_random_state(variable):
    """Whether `variable` is the state of a `keras.random.SeedGenerator`.

    A randomized model (noise injected at inference) advances these states
    in every forward pass; its weights and statistics stay as they are.
    """
    return variable.path.endswith("seed_generator_state")


def random_state_variables(model):
    """The seed-generator states of a Keras layer or model (empty otherwise)."""
    if not isinstance(model, keras.layers.Layer):
        return []
    return [v for v in model.variables if is_random_state(v)]
