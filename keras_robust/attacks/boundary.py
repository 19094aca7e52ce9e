"""Closest point on the zero level set of a scalar margin (FAB-style search).

`boundary_search(margin_fn, x)` looks, for each sample, for the point x^
closest to x (in L-inf, L2 or L1) where a per-sample scalar margin g changes
sign: g(x) > 0 on the correct side, g(x^) < 0 just across. It is the
"Fast Adaptive Boundary" iteration of Croce & Hein (2020) applied to one
scalar function, as DyART (Xu et al., 2023) uses it on the soft logit
margin. `BoundarySearch` wraps it as an attack on the (soft) logit margin.

Everything is written in `keras.ops` and loops with `keras.ops.fori_loop`,
so the search runs eagerly and inside compiled steps (JAX jit, TensorFlow
graphs and XLA) with a compile time independent of `steps`.
"""

import numbers

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust import losses
from keras_robust.attacks import norms
from keras_robust.attacks.base import Attack
from keras_robust.layers.attack_phase import attack_phase
from keras_robust.utils import validation

_NORM_FLOOR = 1e-8  # FAB's floor on step norms in the mixing weight.
_STALL = 1e-3  # step back when 0 <= g(x_{k+1}) < _STALL * g(x) (see _search)


def margin_and_gradient(margin_fn, x):
    """Per-sample margin g(x_i) and its input gradient, in one backward pass.

    The input gradient of sum_i g(x_i) is grad g(x_i) for every sample, since
    `margin_fn` must treat samples independently (e.g. a classifier in
    inference mode); `kr.backend.input_gradient_with_aux` returns it with the
    per-sample values from the same forward pass.

    Args:
        margin_fn: maps a batch shaped like `x` to a (batch,) margin.
        x: float inputs, (batch, ...).

    Returns:
        (values, gradients): float32 (batch,) and float32 shaped like `x`.

    Example:
    >>> values, grads = margin_and_gradient(
    ...     lambda z: kr.losses.soft_margin(net(z, training=False), y), x)
    """

    def total(z):
        values = ops.reshape(ops.cast(margin_fn(z), "float32"), (-1,))
        return ops.sum(values), values

    gradient, values = backend.input_gradient_with_aux(total, ops.cast(x, "float32"))
    return values, gradient


def hyperplane_step(points, gradient, value, norm, clip_min, clip_max):
    """Minimal-norm step onto a hyperplane, with the box constraint.

    For each sample, with p = `points`, w = `gradient` and c = `value` (the
    value of the affine function h(z) = c + w . (z - p) at p), returns the
    step d of least L-inf (or L2) norm with

        c + w . d = 0   and   clip_min <= p + d <= clip_max.

    Derivation. Moving against h, coordinate j moves in the direction
    u_j = -sign(c) sign(w_j) by t_j in [0, cap_j], cap_j the room left in
    the box in that direction; the change of h is -sign(c) sum_j |w_j| t_j,
    so we need sum_j |w_j| t_j = |c|.
      - L-inf: minimising max_j t_j gives the water-filling solution
        t_j = min(rho, cap_j) (a coordinate below rho could take more of the
        load, lowering the maximum).
      - L2: the KKT conditions of min ||d||^2 give d_j = clip(-lambda w_j,
        lo_j, hi_j), i.e. t_j = min(mu |w_j|, cap_j) with mu = |lambda|.
      - L1: minimising sum_j t_j is a fractional knapsack: the coordinates
        with the largest |w_j| first, each moved by its full room cap_j,
        until the next one needs only part of its room (`_l1_hyperplane_step`;
        the reference's `projection_l1` in fab_projections.py, which finds
        the same index by bisection).
    L-inf and L2 read t_j = min(rho s_j, cap_j), with s_j = 1 (L-inf) or |w_j| (L2),
    and F(rho) = sum_j |w_j| min(rho s_j, cap_j) is a concave, piecewise
    linear, non-decreasing function of rho with breakpoints b_j = cap_j / s_j.
    Sorting the breakpoints gives F at each of them from cumulative sums,
    the first breakpoint where F >= |c| brackets the solution, and F is
    linear there, so rho is exact (no iteration). When F(inf) < |c| the
    hyperplane is out of the box's reach: every coordinate takes its full
    room (the point of the box closest to the hyperplane in that direction).

    Args:
        points: (batch, n) flat points inside the box.
        gradient: (batch, n) normal vectors w.
        value: (batch,) values c of the affine function at `points`.
        norm: "linf", "l2" or "l1".
        clip_min, clip_max: the box.

    Returns:
        (batch, n) steps d.

    Example:
    >>> d = hyperplane_step(x_flat, w, x_flat @ w_vec + b, "linf", 0.0, 1.0)
    """
    sign = ops.sign(value)[:, None]
    direction = -sign * ops.sign(gradient)
    room = ops.where(direction > 0, clip_max - points, points - clip_min)
    room = ops.where(direction != 0, ops.maximum(room, 0.0), 0.0)
    magnitude = ops.abs(gradient)
    if norm == "l1":
        return direction * _l1_hyperplane_step(magnitude, room, ops.abs(value))
    speed = ops.ones_like(magnitude) if norm == "linf" else magnitude
    slope = magnitude * speed
    safe_speed = ops.where(speed > 0, speed, 1.0)
    breakpoint = ops.where(speed > 0, room / safe_speed, 0.0)
    limit = magnitude * room

    order = ops.argsort(breakpoint, axis=1)
    sorted_breakpoint = ops.take_along_axis(breakpoint, order, axis=1)
    sorted_slope = ops.take_along_axis(slope, order, axis=1)
    sorted_limit = ops.take_along_axis(limit, order, axis=1)
    limit_before = ops.cumsum(sorted_limit, axis=1) - sorted_limit
    slope_from = ops.sum(sorted_slope, axis=1, keepdims=True) - (
        ops.cumsum(sorted_slope, axis=1) - sorted_slope
    )
    reached = limit_before + sorted_breakpoint * slope_from
    target = ops.abs(value)[:, None]
    count = ops.sum(ops.cast(reached < target, "int32"), axis=1, keepdims=True)
    size = breakpoint.shape[1]
    index = ops.minimum(count, size - 1)
    numerator = target - ops.take_along_axis(limit_before, index, axis=1)
    denominator = ops.take_along_axis(slope_from, index, axis=1)
    rho = numerator / ops.maximum(denominator, norms.TINY)
    rho = ops.where(count >= size, sorted_breakpoint[:, -1:], ops.maximum(rho, 0.0))
    return direction * ops.minimum(rho * speed, room)


def _l1_hyperplane_step(magnitude, room, target):
    """Movements t >= 0 of least sum with sum_j |w_j| t_j = |c|, t_j <= cap_j.

    Taken greedily by |w_j|, largest first: full room until the cumulative
    change would pass |c|, then the part of the next coordinate's room that
    reaches it exactly; all the room when even that falls short.
    """
    order = ops.argsort(-magnitude, axis=1)
    sorted_magnitude = ops.take_along_axis(magnitude, order, axis=1)
    sorted_room = ops.take_along_axis(room, order, axis=1)
    change = sorted_magnitude * sorted_room
    change_before = ops.cumsum(change, axis=1) - change
    needed = target[:, None] - change_before
    partial = ops.where(
        sorted_magnitude > 0, needed / ops.maximum(sorted_magnitude, norms.TINY), 0.0
    )
    sorted_movement = ops.clip(partial, 0.0, sorted_room)
    # Scatter back through the inverse permutation of `order`.
    return ops.take_along_axis(sorted_movement, ops.argsort(order, axis=1), axis=1)


def check_search_arguments(steps, norm, init_radius, alpha_max, overshoot, backtrack):
    steps = validation.positive_integer(steps, "steps")
    norm = validation.norm_name(norm, ("linf", "l2", "l1"))
    init_radius = validation.positive_number(init_radius, "init_radius", True)
    alpha_max = validation.positive_number(alpha_max, "alpha_max", allow_zero=True)
    if alpha_max > 1:
        raise ValueError(f"`alpha_max` must lie in [0, 1], got {alpha_max!r}.")
    overshoot = validation.positive_number(overshoot, "overshoot")
    if overshoot < 1:
        raise ValueError(f"`overshoot` must be >= 1, got {overshoot!r}.")
    backtrack = validation.positive_number(backtrack, "backtrack")
    if backtrack > 1:
        raise ValueError(f"`backtrack` must lie in (0, 1], got {backtrack!r}.")
    return steps, norm, init_radius, alpha_max, overshoot, backtrack


def random_start(x, init_radius, norm="linf", clip_min=0.0, clip_max=1.0, seed=None):
    """The search's start: uniform within `init_radius / 2` of x, clipped.

    Args:
        x: inputs.
        init_radius: the start lies within `init_radius / 2`; 0 gives x.
        norm: "linf", "l2" or "l1" (the ball's norm).
        clip_min, clip_max: the box.
        seed: an int or a `keras.random.SeedGenerator`.

    Returns:
        float32 starting points shaped like `x`.
    """
    x = ops.cast(x, "float32")
    if init_radius == 0:
        return x
    starts = norms.random_starts(
        x,
        1,
        "uniform",
        init_radius / 2,
        norm,
        clip_min,
        clip_max,
        lambda index: seed + index if isinstance(seed, int) else seed,
    )
    return starts[0]


def boundary_search(
    margin_fn,
    x,
    steps=20,
    norm="linf",
    init_radius=8 / 255,
    alpha_max=0.1,
    overshoot=1.05,
    backtrack=0.9,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
    start=None,
    refine_steps=0,
):
    """Closest point across the zero level set of a scalar margin (FAB).

    For each sample, searches the point x^ that minimises ||x^ - x|| (L-inf, L2
    or L1) subject to g(x^) < 0, where g = `margin_fn` is positive on the
    correct side. From a start x_0 within `init_radius / 2` of x, each of the
    `steps` iterations

    1. linearises g at x_k: h(z) = g(x_k) + grad g(x_k) . (z - x_k) (for a
       matrix of margins g_1..g_m, the one whose linearised boundary is
       closest, |g_j(x_k)| / ||grad g_j(x_k)||_*, as untargeted FAB);
    2. takes the minimal-norm box-constrained steps onto {h = 0} from x_k
       and from x (`hyperplane_step`): d1 and d2;
    3. mixes them with the per-sample weight
       a = clip(||d1|| / (||d1|| + ||d2||), 0, alpha_max) and overshoots:
       x_{k+1} = clip((1 - a) (x_k + eta d1) + a (x + eta d2));
    4. where x_{k+1} has crossed (g(x_{k+1}) < 0, or the success test
       that `margin_fn` returns with g), records it if it is the closest
       crossing so far and steps back towards x:
       x_{k+1} <- x + beta (x_{k+1} - x). It also steps back
       (without recording) where 0 <= g(x_{k+1}) < 1e-3 g(x): an iterate
       that lands on the boundary to within rounding is a fixed point of the
       update above (d1 = 0 and a = 0), where FAB would stall for the
       remaining iterations.

    Each iteration costs one forward and backward pass (value and gradient
    together, `margin_and_gradient`) and one forward pass (the check), plus
    one forward pass for g(x) before the loop.

    Accuracy: because of the overshoot, the recorded crossings lie slightly
    beyond the boundary; on a linear margin the best one settles 0.5-1%
    farther than the exact closest point. `refine_steps > 0` ends with a
    bisection on the segment from x to the best crossing (one forward pass
    per step), which puts it on the boundary (still with g < 0) to within
    2^-refine_steps of the segment's length; it is not part of FAB or of the
    DyART reference, so it is off by default.

    Difference from the DyART reference code: its mixing weight is computed
    per sample but then indexed with `[0]`, so every sample of a batch uses
    the first sample's weight. Here each sample has its own weight, as in
    FAB. The reference also puts the start on the sphere of radius
    eps / 2; here it is uniform within that ball.

    Args:
        margin_fn: maps a batch shaped like `x` to a (batch,) margin g,
            positive on the correct side, or to a (batch, m) matrix of
            margins against m boundaries (g is then their minimum, and each
            iteration linearises all m, one backward pass each, and steps
            onto the closest; FAB's untargeted search), or to a pair (g, crossed) whose
            (batch,) bool success test replaces g < 0 in step 4 and in the
            bisection (it must hold wherever g < 0). FAB returns "the
            prediction is not the true class" from the same forward pass,
            so that a search linearising the margin against one target also
            records iterates that land in a third class, as the reference
            code does (`fab_base.py`, `attack_single_run`:
            `is_adv = pred != la2`). Samples must be independent (run
            classifiers in inference mode).
        x: float inputs in [clip_min, clip_max], (batch, ...).
        steps: iterations, >= 1.
        norm: "linf", "l2" or "l1": the distance minimised.
        init_radius: the start is uniform within `init_radius / 2` of x
            (clipped to the box); 0 starts at x.
        alpha_max: largest weight of the step from x, in [0, 1].
        overshoot: eta >= 1, the factor beyond the linearised boundary.
        backtrack: beta in (0, 1], the step back towards x after a crossing.
        clip_min, clip_max: the box every iterate stays in.
        seed: int or `keras.random.SeedGenerator` for the start (pass one of
            them inside compiled code).
        start: optional starting points shaped like `x` (then `init_radius`
            and `seed` are unused), e.g. drawn before a `keras.ops.cond`.
        refine_steps: bisection steps >= 0 on [x, best crossing] after the
            search (default 0: none, as FAB).

    Returns:
        (x_boundary, found): the closest crossing point found per sample
        (float32, shaped like `x`; `x` itself where none was found) and a
        (batch,) bool mask of the samples where one was found. Both are
        stop-gradiented.

    Example:
    >>> def margin(z):
    ...     return kr.losses.soft_margin(net(z, training=False), y, 5.0)
    >>> x_hat, found = kr.attacks.boundary_search(margin, x, steps=20, seed=0)
    """
    if not callable(margin_fn):
        raise TypeError(
            f"`margin_fn` must be a callable batch -> (batch,) margin, got "
            f"{type(margin_fn).__name__}."
        )
    steps, norm, init_radius, alpha_max, overshoot, backtrack = check_search_arguments(
        steps, norm, init_radius, alpha_max, overshoot, backtrack
    )
    refine_steps = _check_refine_steps(refine_steps)
    clip_min, clip_max = validation.clip_range(clip_min, clip_max)
    seed = validation.seed_value(seed)
    if not backend.is_tracing(x):
        validation.check_images(x, clip_min, clip_max)
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    with attack_phase():
        return _search(
            margin_fn,
            x,
            steps,
            norm,
            init_radius,
            alpha_max,
            overshoot,
            backtrack,
            clip_min,
            clip_max,
            seed,
            start,
            refine_steps,
        )


def _check_refine_steps(refine_steps):
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, numbers.Integral):
        raise TypeError(
            f"`refine_steps` must be an integer >= 0, got {refine_steps!r}."
        )
    if refine_steps < 0:
        raise ValueError(
            f"`refine_steps` must be an integer >= 0, got {refine_steps!r}."
        )
    return int(refine_steps)


def _search(
    margin_fn,
    x,
    steps,
    norm,
    init_radius,
    alpha_max,
    overshoot,
    backtrack,
    clip_min,
    clip_max,
    seed,
    start,
    refine_steps,
):
    shape = (-1,) + tuple(x.shape[1:])
    x_flat = norms.flatten(x)
    if start is None:
        start = random_start(x, init_radius, norm, clip_min, clip_max, seed)
    current = norms.flatten(ops.cast(start, "float32"))

    def margins(flat):
        """(g, crossed) at `flat`, from one call of `margin_fn`; g is
        (batch,) or, for several boundaries, (batch, m)."""
        value = margin_fn(ops.reshape(flat, shape))
        crossed = None
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(
                    "`margin_fn` must return a (batch,) margin or a pair "
                    f"(margin, crossed), got a sequence of {len(value)}."
                )
            value, crossed = value
        value = ops.cast(value, "float32")
        if len(value.shape) not in (1, 2):
            raise ValueError(
                "`margin_fn` must return a (batch,) margin or a (batch, m) "
                f"matrix of margins, got shape {tuple(value.shape)}."
            )
        if crossed is not None:
            crossed = ops.reshape(ops.cast(crossed, "bool"), (-1,))
        return value, crossed

    def evaluate(flat):
        """(g, crossed): g the (batch,) margin (the least of several)."""
        value, crossed = margins(flat)
        if len(value.shape) == 2:
            value = ops.min(value, axis=1)
        return value, value < 0 if crossed is None else crossed

    def margin(flat):
        return evaluate(flat)[0]

    def has_crossed(flat):
        return evaluate(flat)[1]

    value_at_x = margins(x_flat)[0]
    linearise = (
        (lambda flat: margin_and_gradient(margin, flat))
        if len(value_at_x.shape) == 1
        else _closest_linearisation(
            lambda flat: margins(flat)[0], value_at_x.shape[1], norm
        )
    )

    def iteration(_, carry):
        current, best, best_distance, found = carry
        value, gradient = linearise(current)
        # The linearisation at `current`, evaluated at x.
        value_at_x = value + ops.sum(gradient * (x_flat - current), axis=1)
        step_current = hyperplane_step(
            current, gradient, value, norm, clip_min, clip_max
        )
        step_x = hyperplane_step(x_flat, gradient, value_at_x, norm, clip_min, clip_max)
        size_current = ops.maximum(norms.distance(step_current, norm), _NORM_FLOOR)
        size_x = ops.maximum(norms.distance(step_x, norm), _NORM_FLOOR)
        weight = ops.clip(size_current / (size_current + size_x), 0.0, alpha_max)
        weight = weight[:, None]
        candidate = (1.0 - weight) * (current + overshoot * step_current) + weight * (
            x_flat + overshoot * step_x
        )
        candidate = ops.clip(candidate, clip_min, clip_max)
        value_candidate, crossed = evaluate(candidate)
        distance = norms.distance(candidate - x_flat, norm)
        better = ops.logical_and(crossed, distance < best_distance)
        best = ops.where(better[:, None], candidate, best)
        best_distance = ops.where(better, distance, best_distance)
        found = ops.logical_or(found, better)
        step_back = ops.logical_or(crossed, value_candidate < stall_tolerance)
        current = ops.where(
            step_back[:, None], x_flat + backtrack * (candidate - x_flat), candidate
        )
        return current, best, best_distance, found

    # An iterate that lands on the boundary to within rounding from the
    # correct side (g ~ +0) is a fixed point of the FAB update (d1 = 0 and
    # a = 0): it steps back like a crossing does, without being recorded.
    if len(value_at_x.shape) == 2:
        value_at_x = ops.min(value_at_x, axis=1)
    stall_tolerance = _STALL * ops.relu(value_at_x)
    no_distance = ops.full_like(x_flat[:, 0], np.inf)
    initial = (current, x_flat, no_distance, no_distance < 0)
    _, best, _, found = backend.fori_loop(0, steps, iteration, initial)
    if refine_steps:
        best = _refine(has_crossed, x_flat, best, refine_steps)
    return ops.stop_gradient(ops.reshape(best, shape)), ops.stop_gradient(found)


def _closest_linearisation(margins, count, norm):
    """`linearise(flat) -> (g_j*, grad g_j*)`, j* the closest linearised boundary.

    For `count` margins g_j (the columns of `margins(flat)`), the linearised
    boundary {g_j = 0} lies at distance |g_j| / ||grad g_j||_* (the dual
    norm) from the point; untargeted FAB steps onto the closest one (the
    reference, `fab_base.py`, `attack_single_run`:
    `dist1 = df.abs() / (1e-12 + ||dg||_*)`, `ind = dist1.min(dim=1)[1]`).
    One forward and backward pass per margin, in a loop (`margin_fn` may
    close over per-sample data such as labels, so the batch cannot be
    repeated into one pass).
    """

    def linearise(flat):
        def column(j, state):
            best_distance, best_value, best_gradient = state
            value, gradient = margin_and_gradient(
                lambda z: ops.take(margins(z), j, axis=1), flat
            )
            distance = ops.abs(value) / (norms.TINY + norms.dual_norm(gradient, norm))
            closer = distance < best_distance
            return (
                ops.where(closer, distance, best_distance),
                ops.where(closer, value, best_value),
                ops.where(closer[:, None], gradient, best_gradient),
            )

        far = ops.full_like(flat[:, 0], np.inf)
        state = (far, ops.zeros_like(far), ops.zeros_like(flat))
        _, value, gradient = backend.fori_loop(0, count, column, state)
        return value, gradient

    return linearise


def _refine(has_crossed, x_flat, best, refine_steps):
    """Bisection for the first crossing on the segment x -> best (crossed)."""
    segment = best - x_flat

    def bisect(_, bounds):
        low, high = bounds
        middle = (low + high) / 2
        crossed = has_crossed(x_flat + middle[:, None] * segment)
        return ops.where(crossed, low, middle), ops.where(crossed, middle, high)

    zeros = ops.zeros_like(x_flat[:, 0])
    _, high = backend.fori_loop(0, refine_steps, bisect, (zeros, zeros + 1.0))
    return x_flat + high[:, None] * segment


@keras.saving.register_keras_serializable(package="keras_robust")
class BoundarySearch(Attack):
    """Closest point across the (soft) logit-margin boundary, found by FAB.

    Runs `boundary_search` on the margin of the true class,

        temperature t:    phi_t(x) = f_y(x) - (1/t) log sum_{j != y} exp(t f_j(x))
        temperature None: f_y(x) - max_{j != y} f_j(x)   (the hard margin)

    and returns, per sample, the closest point found with a negative margin
    (x itself where the search found none, or where x is already across).
    Unlike PGD it has no budget: `epsilon` only sets the random start, which
    lies within `epsilon / 2` of x. This is the search of `kr.models.DyART`
    (which runs it on its own soft margin through `search`).

    Args:
        epsilon: start radius: the start is uniform within epsilon / 2.
        steps: iterations, default 20.
        norm: "linf" (default), "l2" or "l1": the distance minimised.
        temperature: inverse temperature t of the soft margin, > 0, or None
            (default) for the hard margin.
        alpha_max, overshoot, backtrack: see `boundary_search` (0.1, 1.05,
            0.9 as in FAB).
        refine_steps: final bisection steps, see `boundary_search` (default
            0, as FAB).
        clip_min, clip_max, seed: see `kr.attacks.Attack`.

    Example:
    >>> search = kr.attacks.BoundarySearch(8/255, steps=20, temperature=5.0)
    >>> x_hat = search(net, x, y)
    >>> radius = np.abs(x_hat - x).reshape(len(x), -1).max(1)
    """

    NORMS = ("linf", "l2", "l1")

    def __init__(
        self,
        epsilon=8 / 255,
        steps=20,
        norm="linf",
        temperature=None,
        alpha_max=0.1,
        overshoot=1.05,
        backtrack=0.9,
        refine_steps=0,
        clip_min=0.0,
        clip_max=1.0,
        seed=None,
    ):
        super().__init__(epsilon, norm, clip_min, clip_max, seed)
        self.refine_steps = _check_refine_steps(refine_steps)
        (
            self.steps,
            _,
            _,
            self.alpha_max,
            self.overshoot,
            self.backtrack,
        ) = check_search_arguments(
            steps, norm, epsilon, alpha_max, overshoot, backtrack
        )
        self.temperature = (
            None
            if temperature is None
            else validation.positive_number(temperature, "temperature")
        )

    @property
    def iterations(self):
        return self.steps + self.refine_steps

    def margin(self, logits, y):
        """The searched margin of `logits` for labels `y`, per sample."""
        return losses.soft_margin(logits, y, self.temperature)

    def random_start(self, x, draw_seed):
        """Starting points within epsilon / 2 of x (draw them before a cond)."""
        return random_start(
            x, self.epsilon, self.norm, self.clip_min, self.clip_max, draw_seed(0)
        )

    def search(self, margin_fn, x, draw_seed=None, start=None):
        """`boundary_search` of any margin with this attack's settings.

        Args:
            margin_fn: batch -> (batch,) margin, positive on the correct side.
            x: inputs.
            draw_seed: `index -> seed` (as in `perturb`); unused with `start`.
            start: optional starting points.

        Returns:
            (x_boundary, found), see `boundary_search`.
        """
        if start is None:
            start = self.random_start(x, draw_seed)
        return boundary_search(
            margin_fn,
            x,
            steps=self.steps,
            norm=self.norm,
            alpha_max=self.alpha_max,
            overshoot=self.overshoot,
            backtrack=self.backtrack,
            clip_min=self.clip_min,
            clip_max=self.clip_max,
            start=start,
            refine_steps=self.refine_steps,
        )

    def perturb(self, forward, x, y, draw_seed):
        boundary, _ = self.search(lambda z: self.margin(forward(z), y), x, draw_seed)
        return boundary

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            temperature=self.temperature,
            alpha_max=self.alpha_max,
            overshoot=self.overshoot,
            backtrack=self.backtrack,
            refine_steps=self.refine_steps,
        )
        return config
