"""Geometry of the threat models: steepest-ascent steps, projections, starts.

Shared by every attack: an L-inf attack steps along sign(g) and projects with
a coordinate-wise clip; an L2 attack steps along g / ||g||_2 and rescales the
perturbation onto the ball; an L1 attack (APGD) projects onto the
intersection of the L1 ball and the box exactly (`l1_box_projection`).
Every projection ends with a clip to the valid input range [clip_min,
clip_max].
"""

import math

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
    """Per-sample size ||delta|| (L-inf, L2 or L1) over all non-batch axes, (batch,)."""
    if norm == "linf":
        return ops.max(ops.abs(delta), axis=_sample_axes(delta))
    if norm == "l1":
        return ops.sum(ops.abs(delta), axis=_sample_axes(delta))
    return l2_norm(delta, keepdims=False)


def flatten(x):
    """(batch, features): each sample as one vector (static feature count)."""
    return ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))


def dual_norm(gradient, norm):
    """Per-sample dual norm ||g||_* of the threat model's norm, (batch,).

    L1 for "linf", L2 for "l2" and L-inf for "l1": the largest first-order
    change of a function with gradient g over a unit step of the norm.
    """
    if norm == "linf":
        return ops.sum(ops.abs(gradient), axis=_sample_axes(gradient))
    if norm == "l1":
        return ops.max(ops.abs(gradient), axis=_sample_axes(gradient))
    return l2_norm(gradient, keepdims=False)


def per_sample(values, x):
    """(batch,) values reshaped to broadcast against x (masks, step sizes)."""
    return ops.reshape(values, (-1,) + (1,) * (len(x.shape) - 1))


def ascent_direction(gradient, norm):
    """Unit steepest-ascent direction of the norm: sign(g) or g / ||g||_2."""
    if norm == "linf":
        return ops.sign(gradient)
    return gradient / (l2_norm(gradient) + TINY)


def l1_box_projection(x, y, epsilon, clip_min=0.0, clip_max=1.0):
    """The perturbation y' such that x + y' is the projection of x + y onto
    {z : ||z - x||_1 <= epsilon, clip_min <= z <= clip_max}.

    The projection shrinks each |y_i| by min(max(b_i, alpha), |y_i|), where
    b_i >= 0 is the shrink that brings x_i + y_i back into the box and
    alpha >= 0 is 0 when the box alone is enough, else the value at which
    the L1 norm of the result is exactly epsilon (Croce & Hein, "Mind the
    box", 2021, and the reference's `L1_projection` in autopgd_base.py).
    The shrunk total G(alpha) = sum_i min(max(b_i, alpha), |y_i|) is
    piecewise linear with breakpoints at the b_i and |y_i|: one sort of the
    2d breakpoints, a cumulative sum and a linear interpolation find alpha
    exactly (the reference bisects over the same sorted breakpoints).
    y' = sign(y) (|y| - shrink) is exactly 0 where a coordinate is shrunk
    away (the reference's x + y + delta leaves rounding residues there),
    so ||y'||_0 counts what APGD-L1's sparsity rule means to count.

    Args:
        x: centres, in the box, (batch, ...).
        y: perturbations, same shape.
        epsilon: L1 radius, > 0 (a number or a (batch,) tensor).

    Returns:
        y', same shape as x.
    """
    shape = ops.shape(x)
    x, y = flatten(x), flatten(y)
    magnitude = ops.abs(y)
    into_box = ops.maximum(0.0, -ops.minimum(clip_max - x - y, x + y - clip_min))
    breakpoints = ops.concatenate([into_box, magnitude], axis=1)
    slope_changes = ops.concatenate(
        [ops.ones_like(into_box), -ops.ones_like(magnitude)], axis=1
    )
    order = ops.argsort(breakpoints, axis=1)
    points = ops.take_along_axis(breakpoints, order, axis=1)
    # Between points k and k+1, G rises at the count of coordinates whose
    # b_i is passed and |y_i| not yet.
    slope = ops.cumsum(ops.take_along_axis(slope_changes, order, axis=1), axis=1)
    gaps = ops.concatenate([points[:, 1:] - points[:, :-1], points[:, :1] * 0.0], 1)
    start = ops.sum(into_box, axis=1, keepdims=True)  # G at the first point
    at_next = start + ops.cumsum(slope * gaps, axis=1)  # G at point k + 1
    epsilon = ops.reshape(ops.convert_to_tensor(epsilon, "float32"), (-1, 1))
    target = ops.sum(magnitude, axis=1, keepdims=True) - epsilon
    # The first segment whose end reaches the target holds alpha.
    reached = ops.greater_equal(at_next, target)
    segment = ops.argmax(ops.cast(reached, "int32"), axis=1)[:, None]
    at_start = ops.take_along_axis(at_next - slope * gaps, segment, axis=1)
    rate = ops.take_along_axis(slope, segment, axis=1)
    alpha = ops.take_along_axis(points, segment, axis=1) + (target - at_start) / (
        ops.maximum(rate, 1.0)
    )
    needed = ops.greater(target, start)  # the box alone leaves ||.||_1 > eps
    alpha = ops.where(needed, ops.maximum(alpha, 0.0), 0.0)
    shrink = ops.minimum(ops.maximum(into_box, alpha), magnitude)
    return ops.reshape(ops.sign(y) * (magnitude - shrink), shape)


def project(x_adv, x, epsilon, norm, clip_min, clip_max):
    """Projects onto {x' : ||x' - x|| <= epsilon} and then onto the clip box.

    L1: onto the intersection of the ball and the box (`l1_box_projection`),
    which projecting onto one and then the other would not give.
    """
    if norm == "l1":
        x_adv = x + l1_box_projection(x, x_adv - x, epsilon, clip_min, clip_max)
        return ops.clip(x_adv, clip_min, clip_max)
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
            L2 and L1: a uniform point of the unit sphere, scaled by
            eps * u^(1/d)), clipped to the box.
        "normal": x + 0.001 * N(0, I), NOT clipped (the TRADES/MART reference).
        "none": x itself.
        "sphere": on the epsilon sphere, as APGD starts: x + eps * t / ||t||
            with t ~ U(-1, 1) per pixel (L-inf) or N(0, I) (L2), clipped;
            L1: x + t, t ~ N(0, I), projected onto the ball and the box.

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
    if kind == "sphere" and norm == "l1":
        # The reference's L1 start: x + t projected onto the L1 ball and
        # the box, t ~ N(0, I).
        t = keras.random.normal(shape, seed=draw_seed(0))
        per_point = (-1,) + shape[2:]
        centres = ops.reshape(ops.repeat(x, count, axis=0), per_point)
        delta = l1_box_projection(
            centres, ops.reshape(t, per_point), epsilon, clip_min, clip_max
        )
        return ops.clip(x + ops.reshape(delta, shape), clip_min, clip_max)
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
        sample_axes = tuple(range(2, len(shape)))
        if norm == "l1":
            # Laplace coordinates, L1-normalised: uniform on the L1 sphere.
            uniform = keras.random.uniform(shape, -1.0, 1.0, seed=draw_seed(0))
            magnitude = ops.minimum(ops.abs(uniform), 1.0 - 1e-7)
            direction = -ops.sign(uniform) * ops.log1p(-magnitude)
            length = ops.sum(ops.abs(direction), axis=sample_axes, keepdims=True)
        else:
            direction = keras.random.normal(shape, seed=draw_seed(0))
            length = ops.sqrt(
                ops.sum(ops.square(direction), axis=sample_axes, keepdims=True)
            )
        direction = direction / (length + TINY)
        # The coordinates of one sample (`x` is expanded: its axis 1 is the
        # batch, which must not count, and is unknown in a relaxed trace).
        dimension = math.prod(shape[2:])
        radius_shape = shape[:2] + (1,) * (len(shape) - 2)
        radius = epsilon * keras.random.uniform(radius_shape, seed=draw_seed(1)) ** (
            1.0 / dimension
        )
        noise = direction * radius
    return ops.clip(x + noise, clip_min, clip_max)
