"""Plumbing shared by the callbacks: batches, default attack, accuracy."""

import keras
import numpy as np

from keras_robust.attacks import PGD
from keras_robust.utils.data import classifier_of  # noqa: F401 (re-exported)
from keras_robust.utils.data import integer_labels
from keras_robust.utils.data import iterate_batches


def robust_accuracy(classifier, attack, data, y=None, batch_size=256):
    """Fraction of samples still classified correctly under `attack`."""
    correct, total = 0, 0
    for x_batch, y_batch in iterate_batches(data, y, batch_size):
        x_adv = attack(classifier, x_batch, y_batch)
        logits = keras.ops.convert_to_numpy(classifier(x_adv, training=False))
        labels = integer_labels(y_batch)
        correct += int(np.sum(logits.argmax(-1) == labels))
        total += len(labels)
    if total == 0:
        raise ValueError("The validation data of RobustValidation is empty.")
    return correct / total


def default_attack(model, epsilon, owner):
    """PGD-20 (CE, uniform start, step epsilon/4) at the model's epsilon."""
    epsilon = epsilon or getattr(model, "epsilon", None)
    if epsilon is None:
        raise ValueError(
            f"{owner} needs `epsilon` (or an `attack`) when the model is not a "
            "kr.models.RobustModel."
        )
    norm = getattr(model, "norm", "linf")
    training_attack = getattr(model, "attack", None)
    clip = (
        (training_attack.clip_min, training_attack.clip_max)
        if training_attack is not None
        else (0.0, 1.0)
    )
    return PGD.for_evaluation(
        epsilon, norm=norm, clip_min=clip[0], clip_max=clip[1], seed=0
    )


def held_out_energies(classifier, attack, data, y=None, batch_size=256):
    """Mean marginal energies (E(x), E(x*)) over held-out data."""
    from keras_robust.losses.energies import marginal_energy

    natural, adversarial = [], []
    for x_batch, y_batch in iterate_batches(data, y, batch_size):
        x_adv = attack(classifier, x_batch, y_batch)
        for images, store in ((x_batch, natural), (x_adv, adversarial)):
            logits = classifier(images, training=False)
            store.append(keras.ops.convert_to_numpy(marginal_energy(logits)))
    return float(np.concatenate(natural).mean()), float(
        np.concatenate(adversarial).mean()
    )
