"""Square Attack (Andriushchenko et al., 2020): score-based black-box random search.

The attack queries the model's logits only (no gradients), which makes it the
check for gradient masking in AutoAttack: a model whose gradients are
useless to PGD still falls to Square if it is not robust.

Everything is written in `keras.ops`; the iterations run in one
`keras.ops.while_loop` with static shapes (windows at random positions are
masks built from `arange` comparisons), and every random number is drawn
before the loop, so the attack runs eagerly and compiled with the same result.
"""

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust import losses
from keras_robust.attacks import norms
from keras_robust.attacks import objectives
from keras_robust.attacks.base import Attack
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation

SQUARE_LOSSES = ("margin", "ce")
SQUARE_SCHEDULES = ("rescaled", "autoattack")

# Iterations (of a 10,000-query run) after which p is halved.
P_HALVING_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)

_UNCHANGED = 1e-7  # a window whose values move less than this is not a new proposal
_CHUNK = 256  # iterations per random draw (see `_draw`)


def proposals(queries, schedule="rescaled"):
    """Number of proposals after the initial point of a `queries` run.

    "rescaled" (the paper's code): `queries - 1`, so a run makes at most
    `queries` model queries. "autoattack" (AutoAttack's `SquareAttack`, whose
    loop runs `n_queries` proposals after the initial query): `queries`.
    """
    return int(queries) - 1 if schedule == "rescaled" else int(queries)


def p_schedule(iteration, queries, p_init, schedule="rescaled"):
    """Fraction p of the image that proposal `iteration` changes.

    The paper's schedule for a 10,000-query budget halves p_init after
    iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000. With
    schedule="rescaled" (the paper's code, and AutoAttack's
    `resc_schedule=True`) a budget of `queries` rescales the iteration index
    to floor(iteration / queries * 10000), so p ends at p_init / 512 whatever
    the budget. With schedule="autoattack" (AutoAttack builds its Square with
    `resc_schedule=False`) the raw index is compared with the 10,000-query
    halving points: at 5,000 queries p never falls below p_init / 128.

    Args:
        iteration: 0-based index of the proposal after the initialisation
            (an int or an integer numpy array).
        queries: the query budget of the run, >= 1.
        p_init: p of the first proposals, in (0, 1].
        schedule: "rescaled" or "autoattack".

    Returns:
        p, a float or a float numpy array.

    Example:
    >>> p_schedule(6, 5000, 0.8), p_schedule(6, 5000, 0.8, schedule="autoattack")
    (0.4, 0.8)
    """
    iteration = np.asarray(iteration, dtype=np.int64)
    if schedule == "rescaled":
        # In float64, as the reference's int(it / n_queries * 10000).
        iteration = np.floor(iteration / float(queries) * 10000).astype(np.int64)
    halvings = np.sum(iteration[..., None] > np.asarray(P_HALVING_POINTS), axis=-1)
    p = p_init / 2.0**halvings
    return float(p) if np.ndim(p) == 0 else p


def window_sizes(queries, p_init, height, width, norm="linf", schedule="rescaled"):
    """Side of the square changed by each proposal (`proposals(queries, schedule)`).

    s = round(sqrt(p * height * width)) (p of the features of each channel),
    with p from `p_schedule`, at least 1 (L-inf) or at least 3 and odd (L2
    and L1, as the reference), and at most min(height, width).
    """
    count = proposals(queries, schedule)
    p = p_schedule(np.arange(count), queries, p_init, schedule)
    sizes = np.array(
        [int(round(np.sqrt(value * height * width))) for value in np.atleast_1d(p)],
        dtype=np.int64,
    )[:count]
    if norm in ("l2", "l1"):
        sizes = np.maximum(sizes, 3)
        sizes = sizes + (sizes % 2 == 0)
    return np.clip(sizes, 1, min(height, width)).astype("int32")


def centered_squares(rows, cols, power=2):
    """The paper's eta^(rows, cols): nested squares around the centre.

    A pixel at Chebyshev distance d from the centre (rows // 2, cols // 2)
    gets sum_{k=d}^{n} 1 / (k + 1)^power with n = max(rows // 2, cols // 2)
    (power 2 for L2, 4 for L1, as the reference's `eta_rectangles`).
    """
    n = max(rows // 2, cols // 2)
    distance = np.maximum(
        np.abs(np.arange(rows)[:, None] - rows // 2),
        np.abs(np.arange(cols)[None, :] - cols // 2),
    )
    tail = np.cumsum((1.0 / (np.arange(n + 1) + 1.0) ** power)[::-1])[::-1]
    return tail[distance]


def _halves_pattern(size, power, size_of):
    pattern = np.zeros((size, size))
    half = size // 2
    for start, stop, sign in ((0, half, 1.0), (half, size, -1.0)):
        if stop > start:
            part = centered_squares(stop - start, size, power)
            pattern[start:stop] = sign * part / size_of(part)
    return pattern / size_of(pattern)


def l2_pattern(size):
    """The L2 proposal shape: +eta on the top half, -eta on the bottom half.

    Each half is `centered_squares` normalised to unit L2 norm; the whole
    (size, size) pattern has unit L2 norm.
    """
    return _halves_pattern(size, 2, np.linalg.norm)


def l1_pattern(size):
    """The L1 proposal shape: +eta on the top half, -eta on the bottom half.

    Each half is `centered_squares` with power 4 (weights 1 / (k + 1)^4,
    more peaked than L2's), normalised to unit L1 norm; the whole (size,
    size) pattern has unit L1 norm (the reference's `eta` for 'L1').
    """
    return _halves_pattern(size, 4, lambda part: np.abs(part).sum())


PATTERNS = {"l2": l2_pattern, "l1": l1_pattern}


def _grid_init_layout(height, width, norm="l2"):
    """Static layout of the L2 / L1 initialisation: a centred 5x5 grid of squares.

    Returns (block, pattern, pattern_t, count): `block` (height, width)
    holds each pixel's square index, or `count` outside the grid; `pattern`
    and `pattern_t` hold the norm's pattern (`l2_pattern`, `l1_pattern`)
    and its transpose in every square.
    """
    side = max(min(height, width) // 5, 1)
    rows, cols = min(5, height // side), min(5, width // side)
    top, left = (height - rows * side) // 2, (width - cols * side) // 2
    block = np.full((height, width), rows * cols, "int32")
    pattern = np.zeros((height, width), "float32")
    pattern_t = np.zeros((height, width), "float32")
    unit = PATTERNS[norm](side)
    for r in range(rows):
        for c in range(cols):
            window = (
                slice(top + r * side, top + (r + 1) * side),
                slice(left + c * side, left + (c + 1) * side),
            )
            block[window] = r * cols + c
            pattern[window] = unit
            pattern_t[window] = unit.T
    return block, pattern, pattern_t, rows * cols


def _sign(u):
    return ops.where(ops.less(u, 0.5), -1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_robust")
class Square(Attack):
    """Square Attack: random search over square-shaped updates, logits only.

    Minimises, per sample, the margin loss f_y - max_{j != y} f_j (or -CE
    with loss="ce") of the true label y, using forward passes only. From
    an initial point x_0, each iteration proposes x' = x_k + delta, changing
    a square window of side s at a uniformly random position, queries the
    model once, and keeps x' only if its loss is lower (or x' is
    misclassified). s = round(sqrt(p * h * w)), with p halved from p_init
    along the schedule of `p_schedule`.

    Two schedules, as the two reference codes:

    - schedule="rescaled" (default; the paper's code): the p schedule is
      rescaled to the budget, a run makes `queries - 1` proposals after
      x_0 (at most `queries` queries), and L-inf sign vectors that would
      leave the window unchanged are never proposed (the paper's code
      resamples them; here the vector is drawn uniformly among those that
      change it).
    - schedule="autoattack" (AutoAttack's `SquareAttack` with
      `resc_schedule=False`, as its "standard" version builds it): the raw
      iteration index meets the 10,000-query halving points (at 5,000
      queries on 32x32 images the L-inf square never gets below side 3),
      a run makes `queries` proposals after x_0 (at most `queries + 1`
      queries), every L-inf sign vector is proposed, including one that
      changes nothing (its query is spent), and window corners are
      uniform over {0, ..., h - s - 1} (0 when s = h), the law of the
      reference's `random_int(0, h - s)`: a window smaller than the image
      never covers the last row or column, which keep their x_0 values. On 8x8 images that is
      15 of 64 pixels, and Square breaks about half as many points as with
      every position allowed (measured: benchmarks/README.md).

    L-inf: x_0 = clip(x + eps * sign) with one random sign per column and
    channel (vertical stripes). A proposal sets the window of channel c to
    clip(x + rho_c eps), rho_c a random sign per channel.

    L2: x_0 = clip(x + eps * d / ||d||_2), d a centred 5x5 grid of squares
    of side max(min(h, w) // 5, 1), each holding +/- `l2_pattern` (random sign per channel,
    randomly transposed). A proposal picks two windows W1, W2 of side s
    (odd, >= 3) and, per channel, sets the perturbation nu = x_k - x to
    zero on W2 and, on W1, to nu_temp / ||nu_temp|| * eps_avail with
    nu_temp = rho * eta + nu_W1 / ||nu_W1|| (eta the unit-norm
    `l2_pattern`, randomly transposed, rho a random sign) and
    eps_avail^2 = ||nu_{W1 u W2}||^2 + (eps^2 - ||nu||^2)_+ / c, so that
    ||nu||_2 = eps; then x' = clip(x + nu).

    L1 (the reference's L1 branch, Croce et al., "Sparse-RS" / "Mind the
    box"): the same with L1 in place of L2: x_0 = x + P(d), d the 5x5 grid
    of +/- `l1_pattern` squares (weights 1 / (k + 1)^4, unit L1 norm) and
    P the projection onto the L1 ball of radius eps (1 - 1e-6) and the box
    (`norms.l1_box_projection`, the reference's `L1_projection`). A
    proposal sets, per channel, nu to zero on W2 and, on W1, to
    nu_temp / ||nu_temp||_1 * m with nu_temp = rho * eta + nu_W1 /
    ||nu_W1||_1 and m = c ||nu_{W1 u W2}||_1 + (eps - ||nu||_1)_+ (the
    reference's factor c included), then x' = x + P(nu).

    Queries: samples misclassified at the start are returned unchanged and
    use 0 queries; the others use 1 query for x_0 and 1 per iteration until
    they are misclassified, at most `queries` per restart (`queries + 1`
    with schedule="autoattack"). Each restart
    attacks the samples no earlier restart has fooled, from a new x_0. For
    samples never fooled, the point of lowest loss is returned.
    `attack_with_queries` returns the per-sample counts; eager calls also
    store them in `last_queries`. Unlike other attacks, `perturb` returns
    (x_adv, queries), and eager calls are compiled from the first one on.

    Differences from the reference codes: with schedule="rescaled", window
    positions are uniform over all {0, ..., h - s} (the paper's code's
    `randint(0, h - s)` never reaches the last position, and caps s at
    h - 1); positions, signs and L2
    transposes are drawn per sample (the reference's L2 and L1 code shares
    the window position and the transpose across the batch); the L2 and L1
    init grid is exactly 5x5 squares of side max(h // 5, 1) (the
    reference's loops place h // s per side, more than 5 on some small
    images).

    Args:
        epsilon: radius of the ball, > 0.
        queries: query budget per sample and restart, >= 1 (AutoAttack: 5000):
            with schedule="autoattack", the number of proposals after x_0
            (the reference's `n_queries`).
        norm: "linf", "l2" or "l1".
        p_init: initial fraction of pixels changed, in (0, 1]
            (AutoAttack: 0.8).
        loss: "margin" (AutoAttack) or "ce".
        restarts: runs per sample, >= 1 (AutoAttack: 1).
        clip_min, clip_max: valid input range.
        seed: seed of the attack's own generator.
        schedule: "rescaled" (the Square paper's code) or "autoattack"
            (AutoAttack's), see above.

    Call arguments: as every attack, `attack(model, x, y, seed=None)`, with
    `y` the true labels and `x` images (batch, h, w, channels) in the
    Keras image data format (or (batch, h, w)).

    Example:
    >>> square = kr.attacks.Square(epsilon=8/255, queries=5000, p_init=0.8)
    >>> x_adv = square(classifier, x, y)
    >>> square.last_queries  # per-sample queries of that call

    Reference: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
    query-efficient black-box adversarial attack via random search", ECCV 2020.
    """

    NORMS = ("linf", "l2", "l1")

    def __init__(
        self,
        epsilon,
        queries=5000,
        norm="linf",
        p_init=0.8,
        loss="margin",
        restarts=1,
        clip_min=0.0,
        clip_max=1.0,
        seed=None,
        schedule="rescaled",
    ):
        super().__init__(epsilon, norm, clip_min, clip_max, seed)
        self.queries = validation.positive_integer(queries, "queries")
        self.p_init = validation.positive_number(p_init, "p_init")
        if self.p_init > 1:
            raise ValueError(f"`p_init` must be in (0, 1]; got {p_init!r}.")
        self.loss = validation.one_of(loss, "loss", SQUARE_LOSSES)
        self.restarts = validation.positive_integer(restarts, "restarts")
        self.schedule = validation.one_of(schedule, "schedule", SQUARE_SCHEDULES)
        self.last_queries = None

    @property
    def _proposals(self):
        return proposals(self.queries, self.schedule)

    def __call__(self, model, x, y, seed=None):
        return self.attack_with_queries(model, x, y, seed)[0]

    def attack_with_queries(self, model, x, y, seed=None):
        """(x_adv, queries): the attack and its per-sample int32 query counts.

        Works eagerly and compiled; eager calls also set `last_queries`
        (a numpy array).
        """
        x_adv, queries = super().__call__(model, x, y, seed)
        if backend.is_tracing(queries):
            self.last_queries = None
        else:
            self.last_queries = np.asarray(ops.convert_to_numpy(queries))
        return x_adv, queries

    # Thousands of forward passes: op by op on TensorFlow they cost about
    # 20 ms of overhead each (110 s instead of 8 s for 5000 queries on a
    # digits batch), so even a first call is compiled there.
    @property
    def iterations(self):
        return self.queries * self.restarts

    def perturb(self, forward, x, y, draw_seed):
        """Returns (x_adv, queries); see `attack_with_queries`."""
        x = ops.convert_to_tensor(x, "float32")
        self.check_input_shape(x.shape)
        model_forward_with_gradients = forward

        def forward(images):
            # Black-box: no gradient is ever taken. On torch, outputs that
            # keep their autograd graph would chain every query's graph
            # through the search state (13 GB for 64 digits, 5,000 queries).
            return ops.stop_gradient(model_forward_with_gradients(images))

        rank = len(x.shape)
        channels_first = rank == 4 and keras.config.image_data_format() == (
            "channels_first"
        )
        if rank == 3:
            model_forward = forward

            def forward(images):
                return model_forward(images[..., 0])

            images = x[..., None]
        elif channels_first:
            model_forward = forward

            def forward(images):
                return model_forward(ops.transpose(images, (0, 3, 1, 2)))

            images = ops.transpose(x, (0, 2, 3, 1))
        else:
            images = x
        x_adv, queries = self._search(forward, images, y, draw_seed)
        if rank == 3:
            x_adv = x_adv[..., 0]
        elif channels_first:
            x_adv = ops.transpose(x_adv, (0, 3, 1, 2))
        return ops.stop_gradient(x_adv), queries

    def check_input_shape(self, shape):
        if len(shape) not in (3, 4):
            raise ValueError(
                "Square attacks images of shape (batch, height, width, channels) "
                f"or (batch, height, width); got `x` of shape {tuple(shape)}."
            )

    # -- the search ---------------------------------------------------------

    def _scores(self, logits, labels):
        """(margin, loss to minimise) per sample."""
        logits = ops.cast(logits, "float32")
        margin = objectives.margin(labels, logits)
        if self.loss == "margin":
            return margin, margin
        return margin, -losses.cross_entropy(labels, logits)

    def _draw(self, draw_seed, x):
        """All random numbers, drawn before any loop: (init, per iteration).

        Per-iteration numbers come in chunks of `_CHUNK` iterations of fixed
        shape, so a longer run repeats a shorter one's draws on their common
        iterations (for a given seed).
        """
        batch, height, width, channels = (ops.shape(x)[0],) + tuple(x.shape[1:])
        if self.norm == "linf":
            init_shape = (self.restarts, batch, width, channels)
            per_iteration = 3  # row, column, sign vector
        else:
            blocks = _grid_init_layout(height, width)[3]
            init_shape = (self.restarts, batch, blocks, channels + 1)
            per_iteration = 5 + channels  # 2 windows, transpose, signs
        init = keras.random.uniform(init_shape, seed=draw_seed(0))
        iterations = max(self._proposals, 1)
        chunks = [
            keras.random.uniform(
                (self.restarts, _CHUNK, batch, per_iteration), seed=draw_seed(1 + k)
            )
            for k in range((iterations + _CHUNK - 1) // _CHUNK)
        ]
        steps = chunks[0] if len(chunks) == 1 else ops.concatenate(chunks, axis=1)
        return init, steps[:, :iterations]

    def _search(self, forward, x, y, draw_seed):
        init_draws, step_draws = self._draw(draw_seed, x)

        clean_logits = forward(x)
        labels = labels_lib.to_indices(y, clean_logits.shape[-1])
        clean_margin, clean_loss = self._scores(clean_logits, labels)
        attackable = ops.greater(clean_margin, 0.0)
        zeros = ops.zeros_like(clean_margin, "int32")

        if self.restarts == 1:
            x_best, _, _, queries = self._run(
                forward, x, labels, attackable, init_draws[0], step_draws[0]
            )
            return x_best, queries

        def restart(index, state):
            result, best_loss, fooled, queries = state
            x_best, margin, loss, used = self._run(
                forward,
                x,
                labels,
                ops.logical_and(attackable, ops.logical_not(fooled)),
                ops.take(init_draws, index, axis=0),
                ops.take(step_draws, index, axis=0),
            )
            running = ops.logical_and(attackable, ops.logical_not(fooled))
            broken = ops.logical_and(running, ops.less_equal(margin, 0.0))
            better = ops.logical_and(
                running, ops.logical_or(broken, ops.less(loss, best_loss))
            )
            return (
                ops.where(norms.per_sample(better, x), x_best, result),
                ops.where(better, loss, best_loss),
                ops.logical_or(fooled, broken),
                queries + used,
            )

        state = (
            x,
            ops.where(attackable, np.inf, clean_loss),
            ops.logical_not(attackable),
            zeros,
        )
        result, _, _, queries = backend.fori_loop(0, self.restarts, restart, state)
        return result, queries

    def _run(self, forward, x, labels, attackable, init_draws, step_draws):
        """One restart: (x_best, margin, loss, queries) per sample."""
        if self.norm == "linf":
            x_init = self._linf_init(x, init_draws)
            propose = self._linf_proposal(x)
        else:
            x_init = self._grid_init(x, init_draws)
            propose = self._mass_proposal(x)
        x_init = ops.where(norms.per_sample(attackable, x), x_init, x)
        margin, loss = self._scores(forward(x_init), labels)
        queries = ops.cast(attackable, "int32")
        iterations = self._proposals
        sizes, extra = self._window_tables(x)

        def condition(i, x_best, margin, loss, running, queries):
            return ops.logical_and(ops.less(i, iterations), ops.any(running))

        def body(i, x_best, margin, loss, running, queries):
            u = ops.take(step_draws, i, axis=0)
            x_new = propose(
                x_best, u, ops.take(sizes, i), None if extra is None else extra(i)
            )
            new_margin, new_loss = self._scores(forward(x_new), labels)
            accept = ops.logical_and(
                running,
                ops.logical_or(
                    ops.less(new_loss, loss), ops.less_equal(new_margin, 0.0)
                ),
            )
            queries = queries + ops.cast(running, "int32")
            margin = ops.where(accept, new_margin, margin)
            running = ops.logical_and(running, ops.greater(margin, 0.0))
            return (
                i + 1,
                ops.where(norms.per_sample(accept, x), x_new, x_best),
                margin,
                ops.where(accept, new_loss, loss),
                running,
                queries,
            )

        running = ops.logical_and(attackable, ops.greater(margin, 0.0))
        state = (
            ops.convert_to_tensor(0, "int32"),
            x_init,
            margin,
            loss,
            running,
            queries,
        )
        _, x_best, margin, loss, _, queries = backend.while_loop(condition, body, state)
        return x_best, margin, loss, queries

    def _window_tables(self, x):
        """(sizes, extra): per-iteration window sides; for L2, pattern lookup."""
        height, width = x.shape[1:3]
        sizes = window_sizes(
            self.queries, self.p_init, height, width, self.norm, self.schedule
        )
        if sizes.size == 0:  # a 1-query budget: the loop body is traced, not run
            sizes = np.ones(1, "int32")
        if self.norm == "linf":
            return ops.convert_to_tensor(sizes), None
        distinct, index = np.unique(sizes, return_inverse=True)
        side = int(distinct.max())
        table = np.zeros((len(distinct), side * side), "float32")
        for k, size in enumerate(distinct):
            padded = np.zeros((side, side))
            padded[:size, :size] = PATTERNS[self.norm](int(size))
            table[k] = padded.reshape(-1)
        table = ops.convert_to_tensor(table)
        index = ops.convert_to_tensor(index.reshape(-1).astype("int32"))

        def extra(i):
            return ops.take(table, ops.take(index, i), axis=0), side

        return ops.convert_to_tensor(sizes), extra

    def _positions(self, u_row, u_col, size, height, width):
        # AutoAttack's windows never reach the last row or column (see
        # `_positions`); on 8x8 digits that freezes 15 of 64 pixels after
        # x_0 and halves what Square breaks, so its numbers need that law.
        return _positions(
            u_row, u_col, size, height, width, self.schedule == "rescaled"
        )

    # -- L-inf --------------------------------------------------------------

    def _linf_init(self, x, u):
        """Vertical stripes: one random sign per column and channel."""
        stripes = ops.expand_dims(_sign(u), 1)  # (batch, 1, width, channels)
        return ops.clip(x + self.epsilon * stripes, self.clip_min, self.clip_max)

    def _linf_proposal(self, x):
        """`propose(x_best, u, size, _)`: a square of +/- eps per channel."""
        height, width, channels = x.shape[1:]
        candidates = (
            ops.clip(x - self.epsilon, self.clip_min, self.clip_max),
            ops.clip(x + self.epsilon, self.clip_min, self.clip_max),
        )

        def propose(x_best, u, size, _):
            top, left = self._positions(u[:, 0], u[:, 1], size, height, width)
            mask = _window(top, left, size, height, width)
            window = ops.expand_dims(mask, -1)
            if self.schedule == "autoattack":
                # AutoAttack proposes every sign vector, also one that leaves
                # the window as it is (a query spent on no change).
                every = ops.ones((ops.shape(x_best)[0], channels), "bool")
                changes = [every, every]
            else:
                # changes[s][:, c]: does sign s move channel c of the window?
                changes = [
                    ops.any(
                        ops.logical_and(
                            window,
                            ops.greater_equal(ops.abs(candidate - x_best), _UNCHANGED),
                        ),
                        axis=(1, 2),
                    )
                    for candidate in candidates
                ]
            signs = _changing_signs(changes[0], changes[1], u[:, 2], channels)
            proposal = ops.where(
                ops.greater(signs[:, None, None, :], 0.0), candidates[1], candidates[0]
            )
            return ops.where(window, proposal, x_best)

        return propose

    # -- L2 and L1 ---------------------------------------------------------

    def _onto_ball(self, x, delta):
        """x + delta brought onto the threat model: L2 rescaled to the sphere
        and clipped; L1 projected onto the ball and the box (the reference's
        `L1_projection` with radius eps (1 - 1e-6))."""
        if self.norm == "l1":
            delta = norms.l1_box_projection(
                x, delta, self.epsilon * (1.0 - 1e-6), self.clip_min, self.clip_max
            )
        else:
            delta = delta * (self.epsilon / (norms.l2_norm(delta) + norms.TINY))
        return ops.clip(x + delta, self.clip_min, self.clip_max)

    def _grid_init(self, x, u):
        """A centred 5x5 grid of +/- pattern squares, brought onto the ball."""
        height, width = x.shape[1:3]
        block, pattern, pattern_t, count = _grid_init_layout(height, width, self.norm)
        block = ops.convert_to_tensor(block.reshape(-1))
        signs = ops.pad(_sign(u[..., :-1]), ((0, 0), (0, 1), (0, 0)))
        transposed = ops.pad(
            ops.cast(ops.less(u[..., -1], 0.5), "float32"), ((0, 0), (0, 1))
        )
        signs = ops.reshape(
            ops.take(signs, block, axis=1), (-1, height, width, signs.shape[-1])
        )
        transposed = ops.reshape(
            ops.take(transposed, block, axis=1), (-1, height, width)
        )
        shape = ops.where(
            ops.greater(transposed, 0.5),
            ops.convert_to_tensor(pattern_t)[None],
            ops.convert_to_tensor(pattern)[None],
        )
        return self._onto_ball(x, ops.expand_dims(shape, -1) * signs)

    def _mass_proposal(self, x):
        """`propose(x_best, u, size, (pattern, side))`: move mass W2 -> W1."""
        height, width, channels = x.shape[1:]
        epsilon = self.epsilon
        if self.norm == "l1":

            def size_of(t, axis=None):  # L1 per channel (axis) or per sample
                if axis is None:
                    return ops.sum(ops.abs(t), axis=(1, 2, 3), keepdims=True)
                return ops.sum(ops.abs(t), axis=axis, keepdims=True)

            def available_mass(in_windows, size_used):
                # The reference's L1 branch: (max(eps - ||nu||_1, 0) / c
                # + ||nu_{W1 u W2}||_1) * c per channel; the projection
                # after the step brings the total back within eps.
                unused = ops.maximum(epsilon - size_used, 0.0)
                return (size_of(in_windows, (1, 2)) + unused / channels) * channels

        else:

            def size_of(t, axis=None):
                if axis is None:
                    return norms.l2_norm(t)
                return ops.sqrt(ops.sum(ops.square(t), axis=axis, keepdims=True))

            def available_mass(in_windows, size_used):
                unused = ops.maximum(epsilon**2 - ops.square(size_used), 0.0)
                return ops.sqrt(
                    ops.sum(ops.square(in_windows), axis=(1, 2), keepdims=True)
                    + unused / channels
                )

        def propose(x_best, u, size, extra):
            pattern, side = extra
            top1, left1 = self._positions(u[:, 0], u[:, 1], size, height, width)
            top2, left2 = self._positions(u[:, 2], u[:, 3], size, height, width)
            w1 = ops.cast(_window(top1, left1, size, height, width), "float32")[
                ..., None
            ]
            w2 = ops.cast(_window(top2, left2, size, height, width), "float32")[
                ..., None
            ]
            union = ops.maximum(w1, w2)
            eta = _place(
                pattern, side, top1, left1, ops.less(u[:, 4], 0.5), height, width
            )
            eta = ops.expand_dims(eta, -1) * w1
            rho = _sign(u[:, 5:])[:, None, None, :]
            nu = x_best - x
            nu_w1 = nu * w1
            temp = rho * eta + nu_w1 / (size_of(nu_w1, (1, 2)) + 1e-10)
            available = available_mass(nu * union, size_of(nu))
            nu_new = (
                w1 * temp / (size_of(temp, (1, 2)) + norms.TINY) * available
                + (1.0 - union) * nu
            )
            # L2: ||nu_new|| = eps in exact arithmetic; the rescale (as the
            # reference) only removes rounding.
            return self._onto_ball(x, nu_new)

        return propose

    def get_config(self):
        config = super().get_config()
        config.update(
            queries=self.queries,
            p_init=self.p_init,
            loss=self.loss,
            restarts=self.restarts,
            schedule=self.schedule,
        )
        return config


def _positions(u_row, u_col, size, height, width, last_position=True):
    """Uniform window corners: rows in {0, ..., height - size}, columns alike.

    With `last_position=False` (AutoAttack's law, `random_int(0, h - s)` in
    fra31's `square.py`) the corner is uniform in {0, ..., height - size - 1}
    (0 when size = height), so the window never reaches the last row or column.
    """
    size = ops.cast(size, "int32")

    def corner(u, extent):
        room = extent - size
        choices = room + 1 if last_position else ops.maximum(room, 1)
        position = ops.cast(ops.floor(u * ops.cast(choices, "float32")), "int32")
        return ops.clip(position, 0, choices - 1)

    return corner(u_row, height), corner(u_col, width)


def _window(top, left, size, height, width):
    """(batch, height, width) bool: inside the square [top, top+size) x [left, left+size)."""
    size = ops.cast(size, "int32")
    rows = ops.arange(height, dtype="int32")[None, :]
    cols = ops.arange(width, dtype="int32")[None, :]
    top, left = top[:, None], left[:, None]
    in_rows = ops.logical_and(ops.greater_equal(rows, top), ops.less(rows, top + size))
    in_cols = ops.logical_and(
        ops.greater_equal(cols, left), ops.less(cols, left + size)
    )
    return ops.logical_and(in_rows[:, :, None], in_cols[:, None, :])


def _place(pattern, side, top, left, transposed, height, width):
    """(batch, height, width): the flat (side, side) `pattern` with its corner at
    (top, left) (transposed where asked); arbitrary values outside the window."""
    rows = ops.clip(
        ops.arange(height, dtype="int32")[None, :] - top[:, None], 0, side - 1
    )
    cols = ops.clip(
        ops.arange(width, dtype="int32")[None, :] - left[:, None], 0, side - 1
    )
    rows, cols = rows[:, :, None], cols[:, None, :]
    flat = ops.where(transposed[:, None, None], cols * side + rows, rows * side + cols)
    return ops.take(pattern, flat)


def _changing_signs(changes_minus, changes_plus, u, channels):
    """(batch, channels) signs, uniform among the vectors that change the window.

    `changes_minus[:, c]` / `changes_plus[:, c]` tell whether sign -1 / +1
    changes channel c. This equals the reference's "redraw all signs until
    the window changes", with one uniform `u` per sample: the k-th
    (k = floor(u * allowed)) allowed vector in lexicographic order is built
    channel by channel from counts of allowed completions. When no vector
    changes the window, any vector is as good (all are the same point).
    """
    # unchanged[:, c] = number of signs (0, 1 or 2) that leave channel c as is.
    unchanged = [
        2.0
        - ops.cast(changes_minus[:, c], "float32")
        - ops.cast(changes_plus[:, c], "float32")
        for c in range(channels)
    ]
    suffix = [ops.ones_like(unchanged[0])]  # suffix[j] = prod_{i > c} unchanged
    for c in range(channels - 1, 0, -1):
        suffix.insert(0, suffix[0] * unchanged[c])
    all_unchanged = suffix[0] * unchanged[0]
    allowed = 2.0**channels - all_unchanged
    stuck = ops.less_equal(allowed, 0.0)
    allowed = ops.where(stuck, 2.0**channels, allowed)
    k = ops.minimum(ops.floor(u * allowed), allowed - 1.0)
    changed = stuck
    signs = []
    for c in range(channels):
        free = 2.0 ** (channels - 1 - c)
        moves = ops.logical_or(changed, changes_minus[:, c])
        count_minus = ops.where(moves, free, free - suffix[c])
        minus = ops.less(k, count_minus)
        k = ops.where(minus, k, k - count_minus)
        changed = ops.logical_or(
            changed, ops.where(minus, changes_minus[:, c], changes_plus[:, c])
        )
        signs.append(ops.where(minus, -1.0, 1.0))
    return ops.stack(signs, axis=-1)
