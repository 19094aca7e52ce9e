"""Geometry of the threat models: steepest-ascent steps, projections, starts.

Shared by every attack: an L-inf attack steps along sign(g) and projects with
a coordinate-wise clip; an L2 attack steps along g / ||g||_2 and rescales the
perturbation onto the ball. Every projection ends with a clip to the valid
input range [clip_min, clip_max].
"""

import keras
import numpy as np
from keras import ops

# Guard of divisions by norms and gradients (float32 resolution is ~1e-7).
TINY = 1e-12


def _sample_axes(x):
    return tuple(range(1, len(x.shape)))


def l2_norm(x, keepdims=True):
    """Per-sample L2 norm over all non-batch axes."""
    return ops.sqrt(ops.sum(ops.square(x), axis=_sample_axes(x), keepdims=keepdims))


def distance(delta, norm):
    """Per-sample size ||delta|| (L-inf or L2) over all non-batch axes, (batch,)."""
    if norm == "linf":
        return ops.max(ops.abs(delta), axis=_sample_axes(delta))
    return l2_norm(delta, keepdims=False)


def flatten(x):
    """(batch, features): each sample as one vector (static feature count)."""
    return ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))


def dual_norm(gradient, norm):
    """Per-sample dual norm ||g||_* of the threat model's norm, (batch,).

    L1 for "linf" and L2 for "l2": the largest first-order change of a
    function with gradient g over a unit step of the norm.
    """
    if norm == "linf":
        return ops.sum(ops.abs(gradient), axis=_sample_axes(gradient))
    return l2_norm(gradient, keepdims=False)


def per_sample(values, x):
    """(batch,) values reshaped to broadcast against x (masks, step sizes)."""
    return ops.reshape(values, (-1,) + (1,) * (len(x.shape) - 1))


def ascent_direction(gradient, norm):
    """Unit steepest-ascent direction of the norm: sign(g) or g / ||g||_2."""
    if norm == "linf":
        return ops.sign(gradient)
    return gradient / (l2_norm(gradient) + TINY)


def project(x_adv, x, epsilon, norm, clip_min, clip_max):
    """Projects onto {x' : ||x' - x|| <= epsilon} and then onto the clip box."""
    if norm == "linf":
        x_adv = ops.minimum(ops.maximum(x_adv, x - epsilon), x + epsilon)
    else:
        delta = x_adv - x
        scale = ops.minimum(1.0, epsilon / (l2_norm(delta) + TINY))
        x_adv = x + delta * scale
    return ops.clip(x_adv, clip_min, clip_max)


def random_starts(x, count, kind, epsilon, norm, clip_min, clip_max, draw_seed):
    """`count` random starting points around `x`, stacked on a leading axis.

    kind:
        "uniform": uniform in the epsilon ball (L-inf: U(-eps, eps) per pixel;
            L2: uniform direction, radius eps * u^(1/d)), clipped to the box.
        "normal": x + 0.001 * N(0, I), NOT clipped (the TRADES/MART reference).
        "none": x itself.
        "sphere": on the epsilon sphere, as APGD starts: x + eps * t / ||t||
            with t ~ U(-1, 1) per pixel (L-inf) or N(0, I) (L2), clipped.

    `draw_seed(i)` gives the seed of the i-th random draw. All noise is drawn
    here, outside any loop, so compiled loops stay free of random-state
    updates.
    """
    shape = (count,) + tuple(ops.shape(x))
    x = ops.expand_dims(x, 0)
    if kind == "none":
        return ops.repeat(x, count, axis=0)
    if kind == "normal":
        return x + 0.001 * keras.random.normal(shape, seed=draw_seed(0))
    if kind == "sphere":
        sample_axes = tuple(range(2, len(shape)))
        if norm == "linf":
            t = keras.random.uniform(shape, -1.0, 1.0, seed=draw_seed(0))
            size = ops.max(ops.abs(t), axis=sample_axes, keepdims=True)
        else:
            t = keras.random.normal(shape, seed=draw_seed(0))
            size = ops.sqrt(ops.sum(ops.square(t), axis=sample_axes, keepdims=True))
        return ops.clip(x + epsilon * t / (size + TINY), clip_min, clip_max)
    if norm == "linf":
        noise = keras.random.uniform(shape, -epsilon, epsilon, seed=draw_seed(0))
    else:
        direction = keras.random.normal(shape, seed=draw_seed(0))
        sample_axes = tuple(range(2, len(shape)))
        direction = direction / (
            ops.sqrt(ops.sum(ops.square(direction), axis=sample_axes, keepdims=True))
            + TINY
        )
        dimension = 1
        for size in x.shape[1:]:
            dimension *= size
        radius_shape = shape[:2] + (1,) * (len(shape) - 2)
        radius = epsilon * keras.random.uniform(radius_shape, seed=draw_seed(1)) ** (
            1.0 / dimension
        )
        noise = direction * radius
    return ops.clip(x + noise, clip_min, clip_max)
