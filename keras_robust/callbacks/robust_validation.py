"""`RobustValidation`: PGD accuracy on held-out data, keeping the best weights."""

import os

import keras
import numpy as np

from keras_robust.attacks.base import Attack
from keras_robust.callbacks import common
from keras_robust.callbacks import weight_ema
from keras_robust.utils import validation


class RobustValidation(keras.callbacks.Callback):
    """Robust accuracy on held-out data during `fit`, and the best weights.

    Every `every` epochs, attacks the held-out set (default PGD-20, CE loss,
    uniform random start, step epsilon/4, in inference mode) and logs
    `val_robust_accuracy`. Because of robust overfitting the last epoch is
    rarely the most robust one, so the callback remembers the weights with the
    best robust accuracy, optionally writes them to `filepath` whenever they
    improve, and (by default) restores them when training ends.

    Select checkpoints on held-out data, never on the test set. With a
    weight EMA (an optimizer with `use_ema=True`, e.g. with
    `kr.callbacks.WeightEMA`) the EMA weights are evaluated, kept and saved.

    Args:
        validation_data: `(x, y)` arrays, or a `tf.data.Dataset` / iterable of
            `(x, y)` batches.
        attack: a `kr.attacks.Attack`; default PGD-20 at `epsilon`.
        epsilon: radius of the default attack; defaults to the model's
            `epsilon` for a `kr.models.RobustModel`.
        every: run every this many epochs (and always on the last).
        batch_size: batch size for arrays.
        restore_best_weights: set the best weights at the end of training.
        filepath: optional path; `*.weights.h5` saves weights, `*.keras` the
            whole model, each time robust accuracy improves.
        verbose: 1 prints one line per evaluation.

    Example:
    >>> model.fit(x, y, epochs=100,
    ...           callbacks=[kr.callbacks.RobustValidation((x_val, y_val))])
    """

    def __init__(
        self,
        validation_data,
        attack=None,
        epsilon=None,
        every=1,
        batch_size=256,
        restore_best_weights=True,
        filepath=None,
        verbose=1,
    ):
        super().__init__()
        if attack is not None and not isinstance(attack, Attack):
            raise TypeError(
                f"`attack` must be a kr.attacks.Attack, got {type(attack).__name__}."
            )
        if isinstance(validation_data, (tuple, list)):
            if len(validation_data) < 2:
                raise ValueError("`validation_data` must be `(x, y)` or a dataset.")
            self._x, self._y = validation_data[0], validation_data[1]
        elif isinstance(validation_data, np.ndarray) or not hasattr(
            validation_data, "__iter__"
        ):
            raise TypeError(
                "`validation_data` must be `(x, y)` or a dataset of `(x, y)` "
                f"batches, got {type(validation_data).__name__}."
            )
        else:
            self._x, self._y = validation_data, None
        self.attack = attack
        self.epsilon = (
            None if epsilon is None else validation.positive_number(epsilon, "epsilon")
        )
        self.every = validation.positive_integer(every, "every")
        self.batch_size = validation.positive_integer(batch_size, "batch_size")
        self.restore_best_weights = bool(restore_best_weights)
        if filepath is not None and not str(filepath).endswith(
            (".keras", ".weights.h5")
        ):
            raise ValueError(
                "`filepath` must end in '.keras' (whole model) or '.weights.h5' "
                f"(weights only), got {filepath!r}."
            )
        self.filepath = filepath
        self.verbose = verbose
        self.best = -np.inf
        self.best_epoch = None
        self.best_weights = None
        self.history = []

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.best_weights = -np.inf, None, None
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        last = self.params and epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.every and not last:
            return
        if self.attack is None:
            self.attack = common.default_attack(
                self.model, self.epsilon, "RobustValidation"
            )
        # With a weight EMA (`use_ema=True`), the EMA model is the one
        # evaluated, remembered and saved, as in the recipes that use one.
        with weight_ema.ema_weights(self.model):
            accuracy = common.robust_accuracy(
                common.classifier_of(self.model),
                self.attack,
                self._x,
                self._y,
                self.batch_size,
            )
            self.history.append((epoch, accuracy))
            if logs is not None:
                logs["val_robust_accuracy"] = accuracy
            improved = accuracy > self.best
            if improved:
                self.best, self.best_epoch = accuracy, epoch
                self.best_weights = self.model.get_weights()
                if self.filepath is not None:
                    os.makedirs(
                        os.path.dirname(os.path.abspath(self.filepath)), exist_ok=True
                    )
                    if str(self.filepath).endswith(".keras"):
                        self.model.save(self.filepath)
                    else:
                        self.model.save_weights(self.filepath)
        if self.verbose:
            mark = " (best)" if improved else ""
            print(f"\nEpoch {epoch + 1}: val_robust_accuracy {accuracy:.4f}{mark}")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.verbose:
                print(
                    f"Restored the weights of epoch {self.best_epoch + 1} "
                    f"(val_robust_accuracy {self.best:.4f})."
                )
