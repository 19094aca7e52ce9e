"""`RobustModel`: adversarial training of any Keras classifier through `fit`."""

import warnings

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust import energy
from keras_robust.attacks import PGD
from keras_robust.attacks.base import Attack
from keras_robust.losses.consistency import consistency_loss
from keras_robust.models import awp as awp_lib
from keras_robust.models import nonfinite
from keras_robust.utils import data as data_lib
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation

# Keys of the seed states in a model's own saved variables.
_SEED_KEY = "seed_state_"


def _deserialize_optional(config):
    return None if config is None else keras.saving.deserialize_keras_object(config)


def _with_callbacks(args, kwargs, index, extra):
    """(args, kwargs) of `fit`/`evaluate` with `extra` callbacks appended.

    `index`: position of `callbacks` in `args` (after x and y), where a
    caller may have passed it positionally.
    """
    if not extra:
        return args, kwargs
    callbacks = args[index] if len(args) > index else kwargs.get("callbacks")
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    return _replace_callbacks(args, kwargs, index, [*(callbacks or []), *extra])


def _replace_callbacks(args, kwargs, index, callbacks):
    """(args, kwargs) with `callbacks` in place of the caller's."""
    args, kwargs = list(args), dict(kwargs)
    if len(args) > index:
        args[index] = callbacks
    else:
        kwargs["callbacks"] = callbacks
    return args, kwargs


def _extras(logits):
    """`{"extras": ...}` when `compute_logits` returned extras, else `{}`."""
    return {"extras": logits[2]} if len(logits) > 2 else {}


class RobustModel(backend.RobustTrainer):
    """Base class of the adversarial training methods.

    Wraps a classifier that maps images to logits. Each training step

    1. crafts x* = attack(classifier, x, y) with the classifier in inference
       mode (or, when `attack_training_mode=True`, with BatchNorm batch
       statistics whose moving-statistic updates are discarded),
    2. runs the method's forward passes and objective (`compute_logits`,
       `compute_objective`) plus the classifier's regularization losses,
    3. applies the optimizer, and
    4. logs `loss`, the compiled metrics on the natural predictions,
       `adv_accuracy`, `energy_natural` = mean E(x) and
       `energy_adversarial` = mean E(x*), from logits the step already has.

    `evaluate` (and validation during `fit`) reports the same keys, with x*
    crafted by `eval_attack` (default PGD-20, CE, uniform start, step eps/4)
    and all forward passes in inference mode. `predict` and `__call__` are
    the classifier's.

    Subclasses define the method: `build_attack()` (its inner maximisation),
    `compute_objective(...)` (its outer loss) and, when the method needs
    other forward passes than f(x) and f(x*) in training mode,
    `compute_logits(...)`.

    Args:
        classifier: a Keras model returning (batch, classes) logits.
        epsilon: radius of the training threat model.
        step_size: step of the training attack.
        steps: iterations of the training attack.
        norm: "linf" or "l2".
        attack: an optional `kr.attacks.Attack` replacing the method's own.
        eval_attack: attack used by `evaluate`; default PGD-20 (CE, uniform
            start, step epsilon / 4).
        attack_training_mode: run the training attack with batch statistics
            (without updating moving statistics); default per method.
        seed: seed of the model's `keras.random.SeedGenerator`, which drives
            every random start, so compiled steps are reproducible.
        joint_forward: run f(x) and f(x*) as ONE forward pass over the
            concatenated batch [x; x*] (2B images) and split the logits
            (default False: two passes, as the reference codes). Only for
            methods whose objective uses both (TRADES, MART, WEAT, SCORE).
            Without BatchNorm the logits are the same and one larger pass
            can be faster; with BatchNorm, training-mode statistics are then
            those of the mixed 2B batch for both halves (not of x and of x*
            separately), and the moving statistics move once per step, toward
            the mixed batch, instead of twice.
        awp: a `kr.models.AWP` (adversarial weight perturbation): the
            update's gradient is taken at weights perturbed by one ascent
            step of the method's objective (default None: off).
        consistency_weight: lambda of consistency regularisation (Tack et
            al. 2022), default 0 (off): each training batch must be two
            augmentations [x_1; x_2] of the same images (e.g.
            `kr.datasets.mix(..., views=2)`), and lambda times the
            Jensen-Shannon divergence (temperature
            `consistency_temperature`) between the adversarial predictions
            of the two halves is added to the method's loss (reference:
            lambda 1, T 0.5; `kr.losses.consistency_loss`).
        consistency_temperature: its temperature T > 0, default 0.5.
        on_nonfinite_batch: what a batch with NaN/Inf values in x, y or
            sample_weight does. It is never used (no weight, optimizer,
            BatchNorm, seed or metric state changes) and is counted in the
            `skipped_batches` log; `"raise"` (default) then stops `fit` /
            `evaluate` with a `ValueError`, `"skip"` goes on.
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    attack_training_mode_default = False
    # Whether the objective takes f(x) and f(x*) from `compute_logits`'s
    # two training passes, which `joint_forward` may fuse into one.
    supports_joint_forward = True
    # Whether `awp=` (adversarial weight perturbation) applies to the method.
    supports_awp = True

    def __init__(
        self,
        classifier=None,
        epsilon=8 / 255,
        step_size=2 / 255,
        steps=10,
        norm="linf",
        attack=None,
        eval_attack=None,
        attack_training_mode=None,
        seed=None,
        joint_forward=False,
        on_nonfinite_batch="raise",
        awp=None,
        consistency_weight=0.0,
        consistency_temperature=0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        method = type(self).__name__
        if classifier is None:
            raise ValueError(
                f"{method} needs a `classifier`: a Keras model that maps images "
                f"to logits, e.g. `kr.models.{method}(keras.Sequential([...]))`."
            )
        if not isinstance(classifier, keras.layers.Layer):
            raise TypeError(
                f"`classifier` must be a Keras model or layer returning logits, "
                f"got {type(classifier).__name__}."
            )
        for value, name in ((attack, "attack"), (eval_attack, "eval_attack")):
            if value is not None and not isinstance(value, Attack):
                raise TypeError(
                    f"`{name}` must be a kr.attacks.Attack (e.g. "
                    f"kr.attacks.PGD(...)), got {type(value).__name__}."
                )
        self.classifier = classifier
        # The wrapper owns no weights of its own: it is built when the
        # classifier is (Keras would otherwise refuse to save it on TF).
        self.built = classifier.built
        self.epsilon = validation.positive_number(epsilon, "epsilon")
        self.step_size = validation.positive_number(step_size, "step_size")
        self.steps = validation.positive_integer(steps, "steps")
        self.norm = validation.norm_name(norm)
        self.attack = attack if attack is not None else self.build_attack()
        self.eval_attack = (
            eval_attack
            if eval_attack is not None
            else PGD.for_evaluation(
                self.epsilon,
                norm=self.norm,
                clip_min=self.attack.clip_min,
                clip_max=self.attack.clip_max,
            )
        )
        self.attack_training_mode = (
            self.attack_training_mode_default
            if attack_training_mode is None
            else bool(attack_training_mode)
        )
        self.seed = (
            None if seed is None else validation.non_negative_integer(seed, "seed")
        )
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.joint_forward = self._check_joint_forward(joint_forward)
        self.on_nonfinite_batch = nonfinite.check_policy(on_nonfinite_batch)
        self.awp = awp_lib.check_awp(awp, method, self.supports_awp)
        self.consistency_weight = validation.positive_number(
            consistency_weight, "consistency_weight", allow_zero=True
        )
        self.consistency_temperature = validation.positive_number(
            consistency_temperature, "consistency_temperature"
        )
        if self.consistency_weight and not self.supports_awp:
            raise ValueError(
                f"`consistency_weight` is not available for {method}: its "
                "adversarial logits are not predictions on x* (AT, TRADES, "
                "MART, WEAT, SCORE and FastAT support it)."
            )
        if self.awp is not None:
            self.awp_epoch = keras.Variable(
                0.0, dtype="float32", trainable=False, name="awp_epoch"
            )
        self.skipped_batches_tracker = keras.metrics.Sum(name="skipped_batches")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.adv_accuracy_tracker = keras.metrics.Mean(name="adv_accuracy")
        self.energy_natural_tracker = keras.metrics.Mean(name="energy_natural")
        self.energy_adversarial_tracker = keras.metrics.Mean(name="energy_adversarial")

    def _check_joint_forward(self, joint_forward):
        if not isinstance(joint_forward, bool):
            raise TypeError(
                f"`joint_forward` must be True or False, got {joint_forward!r}."
            )
        if joint_forward and not self.supports_joint_forward:
            raise ValueError(
                f"`joint_forward=True` is not available for "
                f"{type(self).__name__}: its objective does not use the two "
                "training passes f(x) and f(x*) that it would fuse (TRADES, "
                "MART, WEAT and SCORE do)."
            )
        return joint_forward

    # ---- what a method defines -------------------------------------------

    def training_pgd(self, loss, random_start):
        """PGD with the model's epsilon, step_size, steps and norm."""
        return PGD(
            self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            norm=self.norm,
            loss=loss,
            random_start=random_start,
        )

    def build_attack(self):
        """The method's training attack, from epsilon/step_size/steps/norm."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `build_attack()`."
        )

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        """The method's loss (a scalar) from the labels and both logits."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `compute_objective()`."
        )

    def method_trackers(self):
        """Extra `keras.metrics.Mean` trackers a method logs (default none)."""
        return []

    def update_method_trackers(self, y, logits_natural, logits_adversarial):
        """Updates `method_trackers()` from the logits of the step.

        Methods whose `compute_logits` returns `extras` also receive them
        here, as the keyword argument `extras`.
        """

    def compute_logits(self, x, x_adv, training):
        """(f(x), f(x*)) fed to the objective; two separate forward passes.

        `x_adv` is whatever `generate_adversarial` returned (stop-gradiented):
        x*, or for a method that overrides it, any structure of tensors.
        A method may return a third element, a dict of per-sample `extras`
        (e.g. weights computed by its search); they then reach
        `compute_objective` and `update_method_trackers` as the keyword
        argument `extras`. With `joint_forward`, one pass over [x; x*].
        """
        if self.joint_forward:
            batch = ops.shape(x)[0]
            both = ops.concatenate([x, ops.cast(x_adv, x.dtype)], axis=0)
            logits = self.classifier(both, training=training)
            return logits[:batch], logits[batch:]
        return (
            self.classifier(x, training=training),
            self.classifier(x_adv, training=training),
        )

    # ---- the step, shared by every method and backend ----------------------

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def build(self, input_shape):
        if not self.classifier.built:
            self.classifier.build(input_shape)
        self.built = True

    def generate_adversarial(self, x, y, training=True):
        """x* for a training step (`training=True`) or for evaluation.

        The trainer stop-gradients the result and hands it to
        `compute_logits`; a method that overrides this may return any
        structure of tensors (x* plus per-sample data of its own).
        """
        if training:
            forward = self._attack_forward(self.attack_training_mode)
            return self.attack(forward, x, y, seed=self.seed_generator)
        return self.eval_attack(
            self._attack_forward(False), x, y, seed=self.seed_generator
        )

    def _attack_forward(self, batch_statistics):
        if not batch_statistics:
            return lambda x: self.classifier(x, training=False)

        def forward(x):
            # A throw-away scope: batch statistics are used, and the moving
            # statistics the training-mode forward writes are discarded.
            mapping = [(v, v.value) for v in self.classifier.variables]
            with keras.StatelessScope(state_mapping=mapping):
                return self.classifier(x, training=True)

        return forward

    def compute_robust_loss(self, x, x_adv, y, sample_weight=None, training=True):
        """Returns (loss, logits), logits = `compute_logits(...)`'s tuple:
        (logits_natural, logits_adversarial[, extras])."""
        logits = tuple(self.compute_logits(x, x_adv, training))
        logits_natural, logits_adversarial = logits[:2]
        loss = self.compute_objective(
            y, logits_natural, logits_adversarial, sample_weight, **_extras(logits)
        )
        if training and self.consistency_weight:
            loss = loss + self.consistency_weight * self.consistency_term(
                logits_adversarial
            )
        regularization = [ops.cast(term, "float32") for term in self.losses]
        if regularization:
            loss = loss + ops.sum(ops.stack(regularization))
        # After the losses are read: Keras clears them at each forward.
        self.update_statistics(x, x_adv, training)
        return loss, logits

    def update_statistics(self, x, x_adv, training):
        """Forward passes run only for their state updates (default none).

        Called after the objective and its regularisation losses, inside
        the step; the outputs are discarded. A method whose reference runs
        more training-mode forwards than its objective needs (TRADES' third
        f(x)) replays them here, so that BatchNorm's moving statistics move
        as the reference's do.
        """

    def compute_robust_metrics(self, x, y, loss, logits, sample_weight=None):
        logits_natural, logits_adversarial = logits[:2]
        self.loss_tracker.update_state(loss, sample_weight=ops.shape(logits_natural)[0])
        labels = labels_lib.to_indices(y, logits_natural.shape[-1])
        predicted = ops.cast(ops.argmax(logits_adversarial, axis=-1), "int32")
        self.adv_accuracy_tracker.update_state(
            ops.cast(ops.equal(predicted, labels), "float32")
        )
        self.energy_natural_tracker.update_state(energy.marginal_energy(logits_natural))
        self.energy_adversarial_tracker.update_state(
            energy.marginal_energy(logits_adversarial)
        )
        self.update_method_trackers(
            y, logits_natural, logits_adversarial, **_extras(logits)
        )
        return self.compute_metrics(x, y, logits_natural, sample_weight)

    @property
    def metrics(self):
        own = [
            self.loss_tracker,
            self.adv_accuracy_tracker,
            self.energy_natural_tracker,
            self.energy_adversarial_tracker,
        ] + list(self.method_trackers())
        own.append(self.skipped_batches_tracker)
        # Keras' own loss tracker (also named "loss") is replaced by ours.
        others = [
            m
            for m in super().metrics
            if m.name != "loss" and not any(m is o for o in own)
        ]
        return own[:1] + others + own[1:]

    def consistency_term(self, logits_adversarial):
        """JS_T between the adversarial predictions of the batch's two halves.

        The batch is [x_1; x_2], two augmentations of the same images (row
        i and row i + B/2), as `kr.datasets.mix(..., views=2)` gives it
        (Tack et al. 2022; `kr.losses.consistency_loss`).
        """
        half = ops.shape(logits_adversarial)[0] // 2
        return consistency_loss(
            logits_adversarial[:half],
            logits_adversarial[half:],
            self.consistency_temperature,
        )

    def weight_perturbation(self, x, x_adv, y, sample_weight=None):
        """The AWP perturbation of each trainable variable, or None.

        The backend steps take the weight gradient at the weights plus this
        perturbation and apply it to the unperturbed weights
        (`kr.models.AWP`); None (no `awp`) leaves the step as it is.
        """
        if self.awp is None:
            return None
        return self.awp.perturbation(self, x, x_adv, y, sample_weight)

    def batch_is_finite(self, x, y, sample_weight=None):
        """Whether a step may use the batch (see `on_nonfinite_batch`)."""
        return nonfinite.batch_is_finite(x, y, sample_weight)

    def count_skipped_batches(self, skipped):
        """Adds `skipped` (a boolean) to `skipped_batches`; returns the logs."""
        self.skipped_batches_tracker.update_state(ops.cast(skipped, "float32"))
        return self.get_metrics_result()

    # ---- Keras entry points, with checks where the data is concrete --------

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                f"{type(self).__name__} defines its own training objective; "
                "call `compile()` without `loss` (set the method's "
                "hyperparameters, e.g. `beta`, on the model instead)."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips this for models that override `compile`; ours only
        # rejects `loss`, so restoring the saved compile arguments is safe.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("fit")
        self._check_data(x, y, "fit")
        validation_data = kwargs.get("validation_data")
        if validation_data is not None:
            self._check_data(
                *data_lib.unpack_validation_data(validation_data), "validation_data"
            )
        self._warn_if_keras_backup(args, kwargs)
        guard = self._nonfinite_guard()
        args, kwargs = _with_callbacks(
            args, kwargs, 3, guard + self.fit_callbacks() + self._awp_callbacks()
        )
        history = super().fit(x, y, *args, **kwargs)
        for callback in guard:
            callback.raise_if_stopped()
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("evaluate")
        callbacks = args[4] if len(args) > 4 else kwargs.get("callbacks")
        if isinstance(callbacks, keras.callbacks.CallbackList):
            # `fit` validating (or a caller with its own list): the list is
            # used as it is, so the progress bar, verbosity and the user's
            # test hooks are those of Keras' own validation.
            return self._evaluate_with_list(x, y, callbacks, args, kwargs)
        self._check_data(x, y, "evaluate")
        guard = self._nonfinite_guard()
        args, kwargs = _with_callbacks(args, kwargs, 4, guard)
        results = super().evaluate(x, y, *args, **kwargs)
        for callback in guard:
            callback.raise_if_stopped()
        return results

    def _evaluate_with_list(self, x, y, callbacks, args, kwargs):
        """`evaluate` with a ready `CallbackList`, which `fit` passes.

        `fit` already checked the validation data and put its guard in the
        list, which is then used as it is. A caller's own list without a
        guard is evaluated through a new list of the same callbacks plus a
        guard for this call only: a `CallbackList` decides at construction
        whether it may dispatch batch hooks to a thread pool (it does when
        none of its callbacks has one), so a guard appended to it later
        would run late, in another thread, and stop the wrong batch.
        """
        present = any(
            isinstance(c, nonfinite.NonFiniteBatchGuard) for c in callbacks.callbacks
        )
        guard = [] if present else self._nonfinite_guard()
        if guard:
            callbacks = keras.callbacks.CallbackList(
                [*callbacks.callbacks, *guard],
                add_history=False,
                add_progbar=False,
                model=self,
                **(callbacks.params or {}),
            )
            args, kwargs = _replace_callbacks(args, kwargs, 4, callbacks)
        results = super().evaluate(x, y, *args, **kwargs)
        for callback in guard:
            callback.raise_if_stopped()
        return results

    def _awp_callbacks(self):
        return [] if self.awp is None else [awp_lib.AWPEpochCounter()]

    def _warn_if_keras_backup(self, args, kwargs):
        """Warns once where Keras' own BackupAndRestore cannot resume exactly.

        The seed states are saved with the weights (`save_own_variables`),
        so it restores the attack's random starts; it does not restore the
        global RNG that shuffles arrays on JAX (NumPy's) and PyTorch
        (torch's, which also draws unseeded Dropout masks there).
        """
        from keras_robust.callbacks.backup_and_restore import (
            BackupAndRestore as RobustBackup,
        )

        if getattr(self, "_warned_keras_backup", False):
            return
        callbacks = args[3] if len(args) > 3 else kwargs.get("callbacks")
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = callbacks.callbacks
        keras_backup = any(
            isinstance(c, keras.callbacks.BackupAndRestore)
            and not isinstance(c, RobustBackup)
            for c in callbacks or []
        )
        shuffle = args[6] if len(args) > 6 else kwargs.get("shuffle", True)
        torch = backend.BACKEND == "torch"
        if keras_backup and (torch or (backend.BACKEND == "jax" and bool(shuffle))):
            self._warned_keras_backup = True
            warnings.warn(
                "keras.callbacks.BackupAndRestore restores the weights, the "
                "optimizer and (for keras_robust models) the attack's seed "
                "states, but not the global random state that "
                f"{'torch' if torch else 'NumPy'} draws the shuffling of "
                f"arrays{' and unseeded Dropout masks' if torch else ''} "
                "from: a resumed run will not match an uninterrupted one. Use "
                "kr.callbacks.BackupAndRestore, which restores it.",
                stacklevel=3,
            )

    def fit_callbacks(self):
        """Callbacks a method adds to the user's in `fit` (default none)."""
        return []

    def _nonfinite_guard(self):
        if self.on_nonfinite_batch == "raise":
            return [nonfinite.NonFiniteBatchGuard()]
        return []

    def _check_compiled(self, method):
        if not self.compiled:
            raise ValueError(
                f"Call `model.compile(optimizer=...)` before `model.{method}()`."
            )

    def _check_data(self, x, y, where):
        batch = data_lib.first_batch(x, y)
        if batch is None:
            return
        images, labels = batch
        if self.on_nonfinite_batch == "skip":
            # Their batches will be skipped; the rest must still be valid.
            images, labels = data_lib.finite_examples(images, labels)
            if len(images) == 0:
                return
        validation.check_images(
            images, self.attack.clip_min, self.attack.clip_max, name=f"x ({where})"
        )
        logits = self.classifier(images[:8], training=False)
        num_classes = validation.check_logits(logits)
        if labels is not None:
            validation.check_labels(labels, num_classes, name=f"y ({where})")
        self.built = self.built or self.classifier.built

    # ---- serialization ------------------------------------------------------

    def _seed_states(self):
        """The state variables of every `SeedGenerator` the model tracks."""
        weights = {id(v) for v in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    def save_own_variables(self, store):
        # Keras saves weights only: the seed states (attack random starts,
        # Dropout masks) go with them, so that `keras.callbacks.BackupAndRestore`
        # and `load_weights` resume the random stream exactly.
        super().save_own_variables(store)
        for index, variable in enumerate(self._seed_states()):
            store[f"{_SEED_KEY}{index}"] = variable

    def load_own_variables(self, store):
        keys = list(store.keys())
        seed_keys = sorted(
            (k for k in keys if k.startswith(_SEED_KEY)),
            key=lambda k: int(k[len(_SEED_KEY) :]),
        )
        super().load_own_variables(
            {k: store[k] for k in keys if not k.startswith(_SEED_KEY)}
        )
        if not seed_keys:
            return  # Saved before seed states were saved (2026-12).
        seeds = self._seed_states()
        values = [store[k] for k in seed_keys]
        if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in seeds]:
            warnings.warn(
                f"The saved model holds {len(values)} random-seed states, "
                f"{type(self).__name__} has {len(seeds)}: they are not restored.",
                stacklevel=2,
            )
            return
        for variable, value in zip(seeds, values):
            variable.assign(np.asarray(value).astype(variable.dtype))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "epsilon": self.epsilon,
            "step_size": self.step_size,
            "steps": self.steps,
            "norm": self.norm,
            "attack": keras.saving.serialize_keras_object(self.attack),
            "eval_attack": keras.saving.serialize_keras_object(self.eval_attack),
            "attack_training_mode": self.attack_training_mode,
            "seed": self.seed,
            "joint_forward": self.joint_forward,
            "on_nonfinite_batch": self.on_nonfinite_batch,
            "consistency_weight": self.consistency_weight,
            "consistency_temperature": self.consistency_temperature,
            "awp": None
            if self.awp is None
            else keras.saving.serialize_keras_object(self.awp),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"]
        )
        config["attack"] = _deserialize_optional(config.get("attack"))
        config["eval_attack"] = _deserialize_optional(config.get("eval_attack"))
        config["awp"] = _deserialize_optional(config.get("awp"))
        return cls(**config)
