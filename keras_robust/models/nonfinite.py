"""Batches with NaN/Inf values: detected inside the compiled step, never trained on.

Every training and evaluation step of a `RobustModel` computes
`batch_is_finite(x, y, sample_weight)`. A batch that fails it changes no
weight, no optimizer slot, no BatchNorm statistic, no seed state and no metric
accumulator; it only adds 1 to the `skipped_batches` metric. What happens next
is the model's `on_nonfinite_batch` policy:

- `"raise"` (default): `NonFiniteBatchGuard`, added to `fit`/`evaluate`,
  stops the run right after that batch and `fit`/`evaluate` raise a
  `ValueError`, the model left as it was after the last finite batch;
- `"skip"`: training goes on; the skips are counted in the logs.
"""

import keras
from keras import ops

POLICIES = ("raise", "skip")


def check_policy(policy):
    if policy not in POLICIES:
        raise ValueError(
            f"`on_nonfinite_batch` must be one of {POLICIES}, got {policy!r}."
        )
    return policy


def batch_is_finite(x, y, sample_weight=None):
    """A scalar boolean tensor: every floating value of the batch is finite.

    Integer labels are finite by construction; floating (one-hot or soft)
    labels and sample weights are checked along with the images.
    """
    checks = [ops.all(ops.isfinite(x))]
    for value in (y, sample_weight):
        if value is not None and "float" in keras.backend.standardize_dtype(
            value.dtype
        ):
            checks.append(ops.all(ops.isfinite(value)))
    finite = checks[0]
    for check in checks[1:]:
        finite = ops.logical_and(finite, check)
    return finite


class NonFiniteBatchGuard(keras.callbacks.Callback):
    """Stops `fit`/`evaluate` at the first batch the step skipped as non-finite.

    The step itself already left the model untouched by that batch. The
    guard stops the loop through Keras' own flags (`stop_training`,
    `stop_evaluating`), so Keras finishes cleanly (on JAX it writes the
    model state back), and `raise_if_stopped()` then raises the error.
    """

    def __init__(self):
        super().__init__()
        self.error = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"training batch {batch} of epoch {self._epoch + 1}")

    def on_test_batch_end(self, batch, logs=None):
        self._check(logs, f"evaluation (or validation) batch {batch}")

    def _check(self, logs, where):
        if self.error is None and logs and float(logs.get("skipped_batches", 0)) > 0:
            self.error = (
                f"The {where} contains NaN or Inf values (in x, y or "
                "sample_weight). It was not used, and the run stopped: the "
                "weights, optimizer and metrics are those after the last finite "
                "batch. Clean the data, or build the model with "
                "`on_nonfinite_batch='skip'` to skip such batches (counted in "
                "the `skipped_batches` log)."
            )
            self.model.stop_training = True
            self.model.stop_evaluating = True

    def raise_if_stopped(self):
        if self.error is not None:
            raise ValueError(self.error)
