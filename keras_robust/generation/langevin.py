"""Stochastic-gradient Langevin dynamics on a classifier's energy."""

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust.generation import initializers as initializers_lib
from keras_robust.losses import energies
from keras_robust.utils import data as data_lib
from keras_robust.utils import validation

ENERGIES = ("joint", "marginal")


class LangevinSampler:
    """Draws class-conditional images from a (robust) classifier.

    A classifier with logits f(x) is an energy-based model: the joint
    energy E(x, y) = -f(x)_y, the marginal energy E(x) = -logsumexp_k f(x)_k.
    Starting from x_0 (an initialiser) and v_0 = 0, each of `steps` steps of
    SGLD with momentum (seed paper, Eq. 7) is

        v_{n+1} = zeta v_n - (eta / 2) grad_x E(x_n, y)
        x_{n+1} = clip(x_n + v_{n+1} + alpha sigma eps_n),   eps_n ~ N(0, I),

    with zeta = `momentum` (0 gives plain SGLD), eta = `step_size`,
    sigma = `noise_std` and alpha = `alpha` (default 1: sigma is the
    noise's standard deviation). The seed paper's code multiplies its noise
    by alpha = sqrt(2 eta) unless alpha is passed
    (`image_generation/utils.py`, lines 558 and 716-717, noise drawn as
    `normal_(0, noise_variance)`, a standard deviation despite the name):
    `alpha=None` does the same, so its "noise 0.001" at eta = 1 is
    `noise_std=0.001, alpha=None`, i.e. a standard deviation of
    sqrt(2) * 0.001. The classifier runs in inference mode. The whole
    chain of a batch is one compiled function (`fori_loop`, XLA per
    `jit_compile`), reused batch after batch and weight update after weight
    update.

    Robust classifiers have perceptually aligned input gradients, so their
    chains turn noise into recognisable class images; a standard
    classifier's chain only adds adversarial-looking noise.

    Args:
        classifier: a Keras classifier returning logits, a `RobustModel`
            (its wrapped classifier is used) or a callable `x -> logits`.
        steps: number of Langevin steps; 20-50 in the paper.
        step_size: eta, the gradient step; 0.5-1 in the paper.
        noise_std: sigma; the added noise has standard deviation
            alpha * sigma.
        alpha: the noise multiplier: a number >= 0 (default 1.0), or None
            for the reference's sqrt(2 * step_size).
        momentum: zeta in [0, 1).
        energy: "joint" (E(x, y), class-conditional) or "marginal" (E(x);
            the labels then only choose the class-wise initialisation).
        initializer: a `kr.generation` initialiser; default
            `UniformInitializer` over the classifier's input shape.
        clip: (low, high) valid pixel range.
        batch_size: chains run together; larger requests run in batches
            (the last batch padded, so one compilation serves them all).
        jit_compile: compile the chain with XLA. "auto" follows Keras: XLA
            on JAX always, on TensorFlow only with a GPU (on CPU its graph
            mode runs the chain about 8x faster than XLA; see
            benchmarks/sampling.py). Either way the chain is one compiled
            graph, not op-by-op.
        seed: int seed of the noise and of the initial draws.

    Example:
    >>> init = kr.generation.PCAInitializer(0.95, sigma=0.005).fit(x, y)
    >>> sampler = kr.generation.LangevinSampler(model, steps=50, step_size=1.0,
    ...                                         momentum=0.9, initializer=init)
    >>> images = sampler.sample(np.repeat(np.arange(10), 8), seed=0)
    """

    def __init__(
        self,
        classifier,
        steps=50,
        step_size=1.0,
        noise_std=0.001,
        momentum=0.0,
        energy="joint",
        alpha=1.0,
        initializer=None,
        clip=(0.0, 1.0),
        batch_size=100,
        jit_compile="auto",
        seed=None,
    ):
        self.classifier = data_lib.classifier_of(classifier)
        if not callable(self.classifier):
            raise TypeError(
                "`classifier` must be a Keras model or a callable mapping "
                f"images to logits, got {type(classifier).__name__}."
            )
        self.steps = validation.positive_integer(steps, "steps")
        self.step_size = validation.positive_number(
            step_size, "step_size", allow_zero=True
        )
        self.noise_std = validation.positive_number(
            noise_std, "noise_std", allow_zero=True
        )
        self.momentum = validation.positive_number(
            momentum, "momentum", allow_zero=True
        )
        self.alpha = (
            None
            if alpha is None
            else validation.positive_number(alpha, "alpha", allow_zero=True)
        )
        if self.momentum >= 1:
            raise ValueError(f"`momentum` must lie in [0, 1), got {momentum!r}.")
        self.energy = validation.one_of(energy, "energy", ENERGIES)
        self.clip = initializers_lib.check_clip(clip)
        if initializer is None:
            initializer = initializers_lib.UniformInitializer(clip=self.clip)
        if not isinstance(initializer, initializers_lib.Initializer):
            raise TypeError(
                "`initializer` must be a kr.generation initialiser "
                "(UniformInitializer, GaussianInitializer, PCAInitializer), "
                f"got {type(initializer).__name__}."
            )
        self.initializer = initializer
        self.batch_size = validation.positive_integer(batch_size, "batch_size")
        if jit_compile not in ("auto", True, False):
            raise ValueError(
                f"`jit_compile` must be 'auto', True or False; got {jit_compile!r}."
            )
        self.jit_compile = jit_compile
        if seed is not None:
            seed = validation.non_negative_integer(seed, "seed")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._rng = np.random.default_rng(seed)
        self._compiled = {}
        self._num_classes = None

    # -- public API --------------------------------------------------------

    def sample(self, labels, seed=None, return_trajectory=False, verbose="auto"):
        """Class-conditional samples, one chain per label.

        Args:
            labels: integer class labels (n,) (or one-hot (n, classes)); one
                image per entry.
            seed: int seed for this call (initial draws and noise); None
                continues the sampler's own random stream.
            return_trajectory: False, or an int k to also return the chain
                every k steps (True: every step).
            verbose: 0 (silent), 1 (progress bar) or "auto" (a bar when the
                request needs more than one batch).

        Returns:
            float32 numpy images (n, H, W, C) in `clip`; with
            `return_trajectory=k` a pair `(images, trajectory)` where
            trajectory is (steps // k + 1, n, H, W, C), snapshot j taken
            after j * k steps (snapshot 0 is the initialisation).
        """
        if seed is not None:
            seed = validation.non_negative_integer(seed, "seed")
        self._ensure_image_shape()
        labels = self._check_labels(labels, self.initializer.image_shape)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        x0 = self.initializer.sample(labels, rng)
        return self.run(
            x0,
            labels,
            seed=seed,
            return_trajectory=return_trajectory,
            verbose=verbose,
        )

    def run(self, x0, labels, seed=None, return_trajectory=False, verbose="auto"):
        """Runs the chains from given starting images (e.g. real images).

        Args:
            x0: float images (n, H, W, C) inside `clip`.
            labels, seed, return_trajectory, verbose: as in `sample`.

        Returns:
            as `sample`.
        """
        initializers_lib._check_in_clip(x0, self.clip, "x0")
        x0 = np.asarray(keras.ops.convert_to_numpy(x0), dtype="float32")
        if x0.ndim < 2:
            raise ValueError(
                f"`x0` must be a batch of images (n, H, W, C); got shape {x0.shape}."
            )
        labels = self._check_labels(labels, x0.shape[1:])
        if len(x0) != len(labels):
            raise ValueError(
                f"`x0` and `labels` must have the same length; got {len(x0)} "
                f"images and {len(labels)} labels."
            )
        every = self._trajectory_every(return_trajectory)
        if seed is not None:
            validation.non_negative_integer(seed, "seed")
            saved_state = self.seed_generator.state.value
            self.seed_generator.state.assign(
                ops.convert_to_tensor([seed, 0], dtype=self.seed_generator.state.dtype)
            )
        try:
            images, trajectory = self._run_batches(x0, labels, every, verbose)
        finally:
            if seed is not None:
                self.seed_generator.state.assign(saved_state)
        return images if every is None else (images, trajectory)

    def chain(self, x0, labels, every=None):
        """The Langevin chain of one batch as `keras.ops` (traceable).

        Usable inside a user's own compiled function. Draws the noise of
        all steps from the sampler's seed generator up front (random draws
        inside `fori_loop` would leak tracers under JAX).

        Args:
            x0: float32 tensor (batch, H, W, C).
            labels: integer labels (batch,).
            every: None, or k to also return snapshots every k steps.

        Returns:
            x_steps, or `(x_steps, trajectory)` when `every` is set.
        """
        return self._chain(
            self._forward, x0, labels, lambda _: self.seed_generator, every
        )

    # -- internals -----------------------------------------------------------

    def _forward(self, x):
        if isinstance(self.classifier, keras.layers.Layer):
            return self.classifier(x, training=False)
        return self.classifier(x)

    @property
    def noise_scale(self):
        """The standard deviation alpha * sigma of each step's noise."""
        alpha = np.sqrt(2 * self.step_size) if self.alpha is None else self.alpha
        return float(alpha * self.noise_std)

    def _energy_sum(self, forward, labels):
        def energy_sum(x):
            logits = ops.cast(forward(x), "float32")
            if self.energy == "joint":
                return ops.sum(energies.joint_energy(logits, labels))
            return ops.sum(energies.marginal_energy(logits))

        return energy_sum

    def _chain(self, forward, x0, labels, draw_seed, every=None):
        x0 = ops.cast(x0, "float32")
        energy_sum = self._energy_sum(forward, labels)
        noise = None
        if self.noise_scale > 0:
            noise = keras.random.normal(
                (self.steps, *ops.shape(x0)),
                stddev=self.noise_scale,
                seed=draw_seed(0),
            )
        low, high = self.clip
        momentum = self.momentum
        half_step = 0.5 * self.step_size

        def step(i, x, velocity):
            gradient = backend.input_gradient(energy_sum, x)
            velocity = momentum * velocity - half_step * gradient
            x = x + velocity
            if noise is not None:
                x = x + noise[i]
            return ops.clip(x, low, high), velocity

        velocity = ops.zeros_like(x0)
        if every is None:

            def body(i, carry):
                return step(i, *carry)

            x, _ = backend.fori_loop(0, self.steps, body, (x0, velocity))
            return x

        num_snapshots = self.steps // every + 1
        # One spare slot takes the writes of steps that are not snapshots,
        # so the loop body needs no branch.
        spare = num_snapshots
        trajectory = ops.zeros((num_snapshots + 1, *ops.shape(x0)), "float32")
        trajectory = ops.slice_update(trajectory, _origin(0, x0), x0[None])

        def body_with_snapshots(i, carry):
            x, velocity, trajectory = carry
            x, velocity = step(i, x, velocity)
            done = i + 1
            slot = ops.where(done % every == 0, done // every, spare)
            trajectory = ops.slice_update(trajectory, _origin(slot, x0), x[None])
            return x, velocity, trajectory

        x, _, trajectory = backend.fori_loop(
            0, self.steps, body_with_snapshots, (x0, velocity, trajectory)
        )
        return x, trajectory[:num_snapshots]

    def _compiled_chain(self, every):
        if every not in self._compiled:
            variables = None
            if isinstance(self.classifier, keras.layers.Layer):
                variables = self.classifier.variables

            def chain(forward, x0, labels, draw_seed):
                return self._chain(forward, x0, labels, draw_seed, every)

            compiled = backend.compile_attack(
                chain,
                self._forward,
                variables,
                self.seed_generator,
                lambda _: self.seed_generator,
                jit_compile=backend.resolve_jit_compile(self.jit_compile),
            )
            if compiled is None:  # A bare callable under JAX: run op by op.

                def compiled(x0, labels):
                    return chain(
                        self._forward, x0, labels, lambda _: self.seed_generator
                    )

            self._compiled[every] = compiled
        return self._compiled[every]

    def _run_batches(self, x0, labels, every, verbose):
        count = len(labels)
        batch = min(self.batch_size, count)
        num_batches = -(-count // batch)
        if verbose == "auto":
            verbose = 1 if num_batches > 1 else 0
        progress = keras.utils.Progbar(count, verbose=verbose, unit_name="sample")
        compiled = self._compiled_chain(every)
        images, trajectories = [], []
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            # Pad the last batch to the common size: one compiled shape.
            rows = np.minimum(np.arange(start, start + batch), count - 1)
            result = compiled(
                ops.convert_to_tensor(x0[rows]),
                ops.convert_to_tensor(labels[rows].astype("int32")),
            )
            if every is None:
                result = (result,)
            images.append(ops.convert_to_numpy(result[0])[: stop - start])
            if every is not None:
                trajectories.append(ops.convert_to_numpy(result[1])[:, : stop - start])
            progress.update(stop)
        images = np.concatenate(images).astype("float32")
        trajectory = (
            np.concatenate(trajectories, axis=1).astype("float32")
            if every is not None
            else None
        )
        return images, trajectory

    def _check_labels(self, labels, image_shape):
        num_classes = self._classes(image_shape)
        validation.check_labels(labels, num_classes, name="labels")
        labels = data_lib.integer_labels(keras.ops.convert_to_numpy(labels))
        if len(labels) == 0:
            raise ValueError("`labels` is empty: pass at least one class label.")
        return labels.astype("int64")

    def _classes(self, image_shape):
        if self._num_classes is None:
            probe = np.full((1, *image_shape), self.clip[0], "float32")
            logits = self._forward(ops.convert_to_tensor(probe))
            self._num_classes = validation.check_logits(logits, where="classifier")
        return self._num_classes

    def _ensure_image_shape(self):
        if self.initializer.image_shape is not None:
            return
        shape = None
        inputs = getattr(self.classifier, "inputs", None)
        if inputs:
            shape = tuple(inputs[0].shape[1:])
        if shape is None or any(d is None for d in shape):
            raise ValueError(
                "Cannot tell the image shape from the classifier: pass an "
                "initialiser that knows it, e.g. "
                "`initializer=kr.generation.UniformInitializer((32, 32, 3))`."
            )
        self.initializer.image_shape = shape

    def _trajectory_every(self, return_trajectory):
        if return_trajectory is False or return_trajectory is None:
            return None
        if return_trajectory is True:
            return 1
        every = validation.positive_integer(return_trajectory, "return_trajectory")
        if every > self.steps:
            raise ValueError(
                f"`return_trajectory` ({every}) must be at most `steps` ({self.steps})."
            )
        return every

    def get_config(self):
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "noise_std": self.noise_std,
            "alpha": self.alpha,
            "momentum": self.momentum,
            "energy": self.energy,
            "clip": list(self.clip),
            "batch_size": self.batch_size,
            "jit_compile": self.jit_compile,
            "seed": self.seed,
        }

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments}, initializer={self.initializer!r})"


def _origin(slot, x):
    return [slot] + [0] * len(x.shape)
