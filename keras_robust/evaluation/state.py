"""Resumable evaluation: the progress of `evaluate_robustness`, saved batch by batch.

An AutoAttack run over 10,000 CIFAR-10 images on a large model takes hours.
With `evaluate_robustness(..., state_path=path)` the counts of every finished
batch and the random states of the attacks are written to `path` after each
batch, atomically. Started again with the same arguments, the evaluation reads
the finished batches again (to check that they are the same data, and for the
sanity checks) without attacking them, restores the attacks' random states,
and continues: its report is the one an uninterrupted run gives (`seconds`
adds up the time of both runs).

This differs from the reference's `state_path` (fra31/auto-attack,
`autoattack/state.py`), which runs attack after attack over the whole data and
saves the robust flags: here each batch goes through the whole cascade, so
the unit of progress is a batch.
"""

import hashlib
import json
import os

import keras
import numpy as np

from keras_robust.utils import files

FORMAT = "keras_robust.evaluation_state"
FORMAT_VERSION = 1


def weights_digest(model):
    """SHA-256 of every variable of `model` (names, shapes and values)."""
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "`state_path` needs a Keras classifier, whose weights identify the "
            f"saved evaluation; got {type(model).__name__}."
        )
    digest = hashlib.sha256()
    for variable in model.variables:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def batch_digest(x, y):
    """SHA-256 of a batch: its images (float32) and integer labels."""
    digest = hashlib.sha256()
    for array in (np.asarray(x, "float32"), np.asarray(y, "int64")):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class EvaluationState:
    """The finished batches of one evaluation, and how to continue it.

    Attributes:
        path: the state file.
        arguments: what fixes the result (threat model, attacks, seed, batch
            size, data size, backend, weights digest); a saved state is
            only continued under the same arguments.
        batches: one record per finished batch: its digest, its number of
            examples, and the counts of correct points after "clean" and
            after each attack, in cascade order.
        num_classes: the classifier's number of classes (None before the
            first batch).
        seed_states: `{attack: state}` of the attacks' seed generators
            after the last finished batch.
        seconds: wall time spent on the finished batches, over all runs.
        finished_at_open, seconds_at_open: the finished batches and their
            seconds when the state was opened (0 for a new one).
    """

    def __init__(self, path, arguments):
        self.path = os.fspath(path)
        self.arguments = arguments
        self.batches = []
        self.num_classes = None
        self.seed_states = {}
        self.seconds = 0.0
        self.finished_at_open = 0
        self.seconds_at_open = 0.0

    @classmethod
    def open(cls, path, arguments):
        """The state saved at `path` if there is one, else a new one.

        Raises:
            ValueError: the file is not an evaluation state, or it was saved
                with other arguments (each differing one is named).
        """
        state = cls(path, arguments)
        if not os.path.exists(state.path):
            return state
        try:
            with open(state.path, encoding="utf-8") as file:
                record = json.load(file)
            if record.get("format") != FORMAT:
                raise ValueError("format")
        except (ValueError, OSError, AttributeError):
            raise ValueError(
                f"`state_path` {state.path!r} exists but is not a keras_robust "
                "evaluation state: pass a new path, or the file a previous "
                "evaluate_robustness(..., state_path=...) wrote."
            ) from None
        saved = record["arguments"]
        differing = [
            f"{name}: saved {saved.get(name)!r}, now {value!r}"
            for name, value in arguments.items()
            if saved.get(name) != value
        ]
        if differing:
            raise ValueError(
                f"`state_path` {state.path!r} holds an evaluation with other "
                "arguments, so it cannot be continued: "
                + "; ".join(differing)
                + ". Pass the same arguments, or another `state_path` for a "
                "new evaluation."
            )
        state.batches = record["batches"]
        state.num_classes = record["num_classes"]
        state.seed_states = record["seed_states"]
        state.seconds = record["seconds"]
        state.finished_at_open = state.finished
        state.seconds_at_open = state.seconds
        return state

    @property
    def finished(self):
        """The number of finished batches."""
        return len(self.batches)

    def counts(self, index, digest):
        """The saved counts of finished batch `index`, if `digest` is its digest."""
        saved = self.batches[index]
        if saved["digest"] != digest:
            raise ValueError(
                f"The data differs from the evaluation saved in {self.path!r}: "
                f"batch {index} is not the one evaluated then. Continue with "
                "the same data in the same order (a shuffled dataset cannot be "
                "continued), or pass another `state_path`."
            )
        return saved["examples"], saved["correct"]

    def check_complete(self, batches_read):
        """Raises if the data ended before the finished batches did."""
        if batches_read < self.finished:
            raise ValueError(
                f"The data has {batches_read} batches, but the evaluation saved "
                f"in {self.path!r} finished {self.finished}: it is not the same "
                "data. Pass the same data, or another `state_path`."
            )

    def called_attacks(self):
        """Names of the attacks that ran on some finished batch.

        An attack runs on a batch when some point survived every earlier
        stage: a count above zero before it.
        """
        called = set()
        for batch in self.batches:
            names = list(batch["correct"])
            for before, name in zip(names, names[1:]):
                if batch["correct"][before] > 0:
                    called.add(name)
        return called

    def record(self, digest, examples, correct, num_classes, seed_states, seconds):
        """Adds a finished batch and writes the state to disk, atomically."""
        self.batches.append(
            {"digest": digest, "examples": int(examples), "correct": correct}
        )
        self.num_classes = int(num_classes)
        self.seed_states = seed_states
        self.seconds = float(seconds)
        files.write_json_atomically(
            self.path,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "arguments": self.arguments,
                "num_classes": self.num_classes,
                "seed_states": self.seed_states,
                "seconds": self.seconds,
                "batches": self.batches,
            },
        )


def seed_states(attacks):
    """`{name: state}` of the attacks' own seed generators, as lists."""
    return {
        name: keras.ops.convert_to_numpy(attack.seed_generator.state.value).tolist()
        for name, attack in attacks.items()
    }


def restore_seed_states(attacks, states):
    """Sets each attack's seed generator to its saved state."""
    for name, attack in attacks.items():
        variable = attack.seed_generator.state
        variable.assign(np.asarray(states[name], dtype=variable.dtype))
