"""`BackupAndRestore`: Keras' fault-tolerance callback, exact for robust training."""

import hashlib
import json
import os
import shutil
import warnings

import keras
import numpy as np

from keras_robust import backend
from keras_robust.callbacks import keras_internals
from keras_robust.utils import files

_STATE_FILE = "robust_state.json"


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that also keeps seeds and history.

    Keras' callback backs up the weights (with BatchNorm statistics), the
    optimizer variables (with `iterations`) and the epoch. It does not back
    up the random-seed state (`keras.random.SeedGenerator`: the random starts
    of the attacks, Dropout), so a resumed run draws other noise than an
    uninterrupted one, nor the logs of the epochs already trained, so the
    `History` that `fit` returns after a restart lacks them.

    This subclass writes both, NumPy's global RNG state and, on PyTorch,
    torch's global RNG states next to Keras' checkpoint, in
    `backup_dir/robust_state.json`, each time Keras writes one, and restores
    them when `fit` starts again. (On PyTorch, Keras shuffles arrays and
    draws the masks of `Dropout` layers built without a `seed` from torch's
    global RNG, not from their `SeedGenerator`, whose state stays put.)
    Killed (even by SIGKILL) anywhere but while a checkpoint is being
    written, and restarted with the same `backup_dir`,
    a run then ends with the weights, optimizer state, seed state and
    `History` of an uninterrupted run, bit for bit, given

    - `save_freq="epoch"` (the default): Keras 3.15 resumes at the start of
      the epoch it was in, so a mid-epoch checkpoint (`save_freq=<int>`)
      trains the batches before it twice (a warning says so on restore);
    - data in the same order as in an uninterrupted run: arrays with
      `shuffle=True` after `keras.utils.set_random_seed(...)` (on JAX Keras
      shuffles them with NumPy's global RNG, on PyTorch with torch's, whose
      states are backed up and restored too; on TensorFlow the seeded
      shuffle is the same in every process), `shuffle=False`, or a dataset
      whose order does not depend on how many epochs this process has
      already iterated;
    - deterministic kernels (CPU, with the same number of threads; on GPU,
      `tf.config.experimental.enable_op_determinism()`,
      `XLA_FLAGS=--xla_gpu_deterministic_ops=true` or
      `torch.use_deterministic_algorithms(True)`).

    The seed state saved is that of every `keras.random.SeedGenerator` the
    model tracks: `model.variables` that are not `model.weights`. The state
    file names the weights file it belongs to: a checkpoint cut short (the
    weights newer than the state) restores as Keras' does, with a warning;
    with `double_checkpoint=True` an unreadable latest checkpoint falls back
    to the previous one, seeds and history included. Other callbacks keep
    their own state (e.g. `EarlyStopping`'s patience, `RobustValidation`'s
    best weights) and are not part of the backup. Unlike Keras' callback, it
    leaves no restored epoch behind: a later `fit` of the same model trains
    from its own `initial_epoch`.

    Args:
        backup_dir: local directory holding the checkpoint; use it for this
            training run only. Remote paths (`gs://...`) are not supported.
        save_freq: `"epoch"` (exact resumption) or an integer number of
            batches (see above).
        double_checkpoint: keep the previous checkpoint too, used when the
            latest one cannot be read.
        delete_checkpoint: delete `backup_dir` when `fit` completes.

    Returns:
        A Keras callback for `fit(callbacks=[...])`.

    Example:
    >>> backup = kr.callbacks.BackupAndRestore("/scratch/run1/backup")
    >>> history = model.fit(x, y, epochs=100, shuffle=False, callbacks=[backup])
    >>> # Killed at epoch 42? Run the same script again: it goes on from the
    >>> # end of epoch 41, and `history` holds all 100 epochs.
    """

    def __init__(
        self,
        backup_dir,
        save_freq="epoch",
        double_checkpoint=False,
        delete_checkpoint=True,
    ):
        if backup_dir and "://" in os.fspath(backup_dir):
            raise ValueError(
                "kr.callbacks.BackupAndRestore needs a local `backup_dir`, got "
                f"{os.fspath(backup_dir)!r}."
            )
        super().__init__(
            os.fspath(backup_dir) if backup_dir else backup_dir,
            save_freq=save_freq,
            double_checkpoint=double_checkpoint,
            delete_checkpoint=delete_checkpoint,
        )
        self._state_path = os.path.join(self.backup_dir, _STATE_FILE)
        self._epochs = []
        self._history = {}
        self._epoch = 0
        self._batch = None
        self._epoch_end = False
        self._pending_history = None

    # ---- backup ---------------------------------------------------------------

    def on_train_batch_end(self, batch, logs=None):
        self._batch, self._epoch_end = batch, False
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._epochs.append(epoch)
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(_as_json_number(value))
        self._epoch_end = True
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        # Keras' private save hook (keras/src/callbacks/backup_and_restore.py,
        # called from on_epoch_end / on_train_batch_end, Keras 3.11.0 to
        # 3.15.1; see callbacks/keras_internals.py).
        # Keras writes the weights, then its metadata; our state comes last
        # and names the weights file it belongs to, so a save cut short is
        # detected on restore.
        if self.double_checkpoint and os.path.exists(self._state_path):
            shutil.copyfile(self._state_path, self._state_path + ".bkp")
        super()._save_model()
        seeds = _seed_variables(self.model)
        state = {
            "weights_sha256": _sha256(keras_internals.backup_weights_path(self)),
            "epoch": self._epoch,
            "epoch_end": self._epoch_end,
            "batch": self._batch,
            "seed_paths": [v.path for v in seeds],
            "seed_states": [
                keras.ops.convert_to_numpy(v.value).tolist() for v in seeds
            ],
            "numpy_rng": _numpy_rng_state(),
            "torch_rng": backend.global_rng_state(),
            "epochs": list(self._epochs),
            "history": self._history,
        }
        files.write_json_atomically(self._state_path, state)

    # ---- restore --------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._epochs, self._history = [], {}
        self._pending_history = None
        # Weights, optimizer variables and the epoch to start from.
        super().on_train_begin(logs)
        if not os.path.exists(keras_internals.backup_weights_path(self)):
            return
        state = self._matching_state()
        if state is None:
            warnings.warn(
                f"The checkpoint in {self.backup_dir!r} has no matching "
                f"{_STATE_FILE} (the run stopped while writing it, or it was "
                "written by keras.callbacks.BackupAndRestore): weights and "
                "optimizer are restored, the random-seed state and the earlier "
                "epochs' history are not, so this run will not match an "
                "uninterrupted one exactly.",
                stacklevel=2,
            )
            return
        self._restore_seeds(state)
        if "numpy_rng" in state:
            _set_numpy_rng_state(state["numpy_rng"])
        if state.get("torch_rng") is not None:
            backend.set_global_rng_state(state["torch_rng"])
        self._epochs = list(state["epochs"])
        self._history = {k: list(v) for k, v in state["history"].items()}
        self._pending_history = (list(self._epochs), dict(self._history))
        if not state["epoch_end"]:
            warnings.warn(
                f"Resuming from a checkpoint taken after batch "
                f"{state['batch']} of epoch {state['epoch']}: Keras restarts "
                "that epoch from its first batch, so the batches before the "
                "checkpoint are trained on twice. Use save_freq='epoch' for "
                "exact resumption.",
                stacklevel=2,
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        keras_internals.forget_restored_epoch(self.model)
        self._prepend_history()

    def on_train_end(self, logs=None):
        keras_internals.forget_restored_epoch(self.model)
        self._prepend_history()  # A restart after the last epoch trains none.
        super().on_train_end(logs)

    def _prepend_history(self):
        """Puts the restored epochs in front of the `History` of this `fit`.

        That History starts empty (its `on_train_begin` resets it), so this
        runs once the first epoch begins (or at the end of a `fit` that had
        no epoch left to train).
        """
        if self._pending_history is None:
            return
        epochs, history = self._pending_history
        self._pending_history = None
        target = getattr(self.model, "history", None)
        if not isinstance(target, keras.callbacks.History) or target.epoch:
            return
        target.epoch = epochs + list(target.epoch)
        for key, values in history.items():
            target.history[key] = list(values) + list(target.history.get(key, []))

    def _matching_state(self):
        """Our state saved with the weights now in place (current or backup)."""
        digest = _sha256(keras_internals.backup_weights_path(self))
        for path in (self._state_path, self._state_path + ".bkp"):
            if not os.path.exists(path):
                continue
            with open(path) as f:
                state = json.load(f)
            if state.get("weights_sha256") == digest:
                return state
        return None

    def _restore_seeds(self, state):
        seeds = _seed_variables(self.model)
        saved = state["seed_states"]
        shapes = [tuple(np.shape(s)) for s in saved]
        if shapes != [tuple(v.shape) for v in seeds]:
            raise ValueError(
                f"The checkpoint in {self.backup_dir!r} holds {len(saved)} "
                f"random-seed states of shapes {shapes} for "
                f"{state['seed_paths']}, the model has {len(seeds)}: it is not "
                "the model that wrote the checkpoint."
            )
        for variable, value in zip(seeds, saved):
            variable.assign(np.asarray(value, dtype=variable.dtype))


def _seed_variables(model):
    """States of the model's `SeedGenerator`s: its variables minus its weights."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _numpy_rng_state():
    """NumPy's global RNG state (it shuffles arrays in `fit` on JAX), as JSON."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return [name, keys.tolist(), position, has_gauss, cached_gaussian]


def _set_numpy_rng_state(state):
    name, keys, position, has_gauss, cached_gaussian = state
    np.random.set_state(
        (name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian)
    )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_json_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
