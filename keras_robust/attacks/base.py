"""Base class of the attacks: arguments, input checks, seeds, serialization."""

import weakref

import keras
from keras import ops

from keras_robust import backend
from keras_robust.attacks import norms
from keras_robust.layers.attack_phase import attack_phase
from keras_robust.utils import random_state
from keras_robust.utils import validation


def as_forward(model):
    """`x -> logits` in inference mode for a Keras model, or the callable itself."""
    if isinstance(model, keras.layers.Layer):
        return lambda x: model(x, training=False)
    if callable(model):
        return model
    raise TypeError(
        "`model` must be a Keras model or a callable mapping inputs to logits, "
        f"got {type(model).__name__}."
    )


class Attack:
    """Base of all attacks: `attack(model, x, y, seed=None) -> x_adv`.

    Subclasses implement `perturb(forward, x, y, draw_seed)`, written in
    `keras.ops` so that it runs eagerly and inside compiled steps alike.

    Args:
        epsilon: radius of the threat model, > 0.
        norm: "linf" or "l2".
        clip_min, clip_max: valid input range; every x_adv is clipped to it.
        seed: int seed of the attack's own `keras.random.SeedGenerator`, used
            when a call passes no `seed`.
    """

    # The threat models a subclass has a form for.
    NORMS = ("linf", "l2")

    def __init__(self, epsilon, norm="linf", clip_min=0.0, clip_max=1.0, seed=None):
        self.epsilon = validation.positive_number(epsilon, "epsilon")
        self.norm = validation.norm_name(norm, self.NORMS, type(self).__name__)
        self.clip_min, self.clip_max = validation.clip_range(clip_min, clip_max)
        if seed is not None:
            seed = validation.non_negative_integer(seed, "seed")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._compiled_calls = None

    def __call__(self, model, x, y, seed=None):
        """Crafts adversarial examples.

        Args:
            model: a Keras classifier returning logits (run with
                `training=False`), or any callable `x -> logits`.
            x: float inputs in [clip_min, clip_max].
            y: true labels (untargeted) or target labels (targeted); integer
                (batch,) or one-hot (batch, classes).
            seed: a `keras.random.SeedGenerator` or an int; defaults to the
                attack's own generator.

        Returns:
            x_adv, float32, same shape as x.
        """
        # Layers that treat attackers differently (SmoothGradReLU) read this
        # flag while the attack is traced.
        with attack_phase():
            return self._attack(model, x, y, seed)

    def _attack(self, model, x, y, seed):
        forward = as_forward(model)
        seed = validation.seed_value(seed)
        seed = self.seed_generator if seed is None else seed

        def draw_seed(index):
            return seed + index if isinstance(seed, int) else seed

        if backend.is_tracing(x):
            return self.perturb(forward, x, y, draw_seed)

        validation.check_images(x, self.clip_min, self.clip_max)
        x = ops.convert_to_tensor(x, "float32")
        num_classes = validation.check_logits(forward(x), where="model")
        validation.check_labels(y, num_classes, batch_size=x.shape[0])
        y = ops.convert_to_tensor(y)
        compiled = self._compiled_call(model, forward, seed, draw_seed)
        if compiled is None:
            return self.perturb(forward, x, y, draw_seed)
        return compiled(x, y)

    def _compiled_call(self, model, forward, seed, draw_seed):
        """A compiled call for (model, seed), or None for an eager first call.

        A first call is compiled where that costs less than running it op
        by op (`backend.compiles_first_attack_call(self.iterations)`: always
        on JAX, for a long attack on TensorFlow), and for a model with seed
        generators; otherwise it runs directly.
        Repeated calls (attacking batch after batch) reuse one compiled
        function, several times faster than running op by op.
        """
        per_model = self._calls_on(model)
        seed_key = self._seed_key(seed)
        # A randomized model is compiled from the first call: on JAX its
        # random state threads through the attack's loops only there.
        compile_now = backend.compiles_first_attack_call(
            self.iterations
        ) or random_state.random_state_variables(model)
        if seed_key not in per_model and not compile_now:
            per_model[seed_key] = None
            return None
        if per_model.get(seed_key) is None:
            variables = None
            if isinstance(model, keras.layers.Layer):
                # The cache must not keep the model alive: it is keyed weakly.
                variables = model.variables
                model_ref = weakref.ref(model)

                def forward(x):
                    return model_ref()(x, training=False)

            per_model[seed_key] = backend.compile_attack(
                self.perturb, forward, variables, seed, draw_seed
            )
        return per_model[seed_key]

    @property
    def iterations(self):
        """Loop iterations of one call (steps times runs), 1 for a single step.

        How long a call runs op by op, which decides whether its first call
        is compiled (`_compiled_call`).
        """
        return 1

    def expect_repeated_calls(self, model):
        """Makes the next call on `model` (with the attack's own seed) compiled.

        As if a first call had already run: a resumed evaluation
        (`evaluate_robustness(..., state_path=...)`) runs its attacks as the
        interrupted process did, compiled after their first batch.
        """
        self._calls_on(model).setdefault(self._seed_key(self.seed_generator), None)

    def _calls_on(self, model):
        """`{seed key: compiled call, or None after one eager call}` for `model`."""
        if self._compiled_calls is None:
            self._compiled_calls = weakref.WeakKeyDictionary()
        return self._compiled_calls.setdefault(model, {})

    @staticmethod
    def _seed_key(seed):
        return ("int", seed) if isinstance(seed, int) else ("state", id(seed))

    def perturb(self, forward, x, y, draw_seed):
        raise NotImplementedError

    def check_input_shape(self, shape):
        """Raises `ValueError` if the attack cannot take inputs of `shape`.

        `shape` includes the batch axis. Every attack here takes any shape
        except `kr.attacks.Square`, which needs images; a cascade
        (`kr.evaluation.AutoAttack`) asks each attack before the first runs.
        """

    def project(self, x_adv, x, epsilon=None):
        """Onto the `epsilon` ball (default: the attack's) and the clip box."""
        epsilon = self.epsilon if epsilon is None else epsilon
        return norms.project(x_adv, x, epsilon, self.norm, self.clip_min, self.clip_max)

    def get_config(self):
        return {
            "epsilon": self.epsilon,
            "norm": self.norm,
            "clip_min": self.clip_min,
            "clip_max": self.clip_max,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"
