"""Input gradients of the loss, and a picture of them (SCORE's "semantic" gradients).

Robust classifiers have input gradients that look like the images they
classify (Tsipras et al. 2019; Pang et al. 2022, SCORE), while a standard
classifier's look like noise. `input_gradients` returns
grad_x CE(f(x), y) for each sample; `save_input_gradient_grid` draws them
next to their images.
"""

import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust.losses.common import cross_entropy
from keras_robust.utils import data as data_lib
from keras_robust.utils import validation


def input_gradients(model, x, y, batch_size=256):
    """Per-sample gradient of the cross-entropy with respect to the input.

        g_i = d CE(f(x_i), y_i) / d x_i

    in inference mode (BatchNorm uses its moving statistics, so samples do
    not interact and one backward pass over a batch gives every g_i).

    Args:
        model: a Keras classifier returning logits, or a `kr.models` method
            (its classifier is used).
        x: inputs (n, ...).
        y: integer (n,) or one-hot (n, classes) labels.
        batch_size: samples per backward pass.

    Returns:
        float32 numpy array shaped like `x`.

    Example:
    >>> gradients = kr.analysis.input_gradients(model, x_test[:16], y_test[:16])
    >>> kr.analysis.save_input_gradient_grid(x_test[:16], gradients, "gradients.png")
    """
    classifier = data_lib.classifier_of(model)
    batch_size = validation.positive_integer(batch_size, "batch_size")
    validation.check_data(x, y)
    x = np.asarray(x, dtype="float32")
    validation.check_images(x, -np.inf, np.inf)
    parts = []
    for x_batch, y_batch in data_lib.iterate_batches(x, np.asarray(y), batch_size):
        num_classes = validation.check_logits(classifier(x_batch[:1], training=False))
        validation.check_labels(y_batch, num_classes, batch_size=len(x_batch))
        labels = ops.convert_to_tensor(y_batch)

        def total_loss(z, labels=labels):
            logits = ops.cast(classifier(z, training=False), "float32")
            return ops.sum(cross_entropy(labels, logits))

        gradient = backend.input_gradient(total_loss, ops.convert_to_tensor(x_batch))
        parts.append(np.asarray(ops.convert_to_numpy(gradient), dtype="float32"))
    return np.concatenate(parts)


def gradient_images(gradients):
    """Gradients as images in [0, 1]: 0.5 + g / (2 max|g|), per sample.

    Zero maps to mid-grey; each gradient is scaled by its own largest
    magnitude, so that its pattern, not its size, is what one sees.
    """
    gradients = np.asarray(gradients, dtype="float32")
    axes = tuple(range(1, gradients.ndim))
    scale = np.max(np.abs(gradients), axis=axes, keepdims=True)
    return 0.5 + gradients / (2 * np.maximum(scale, 1e-12))


def save_input_gradient_grid(images, gradients, path, row_labels=None):
    """A PNG with a row of images above the row of their input gradients.

    Args:
        images: (n, H, W, C) images in [0, 1].
        gradients: their `input_gradients` (same shape).
        path: output file (.png, .pdf).
        row_labels: text of the two rows (default "input", "gradient").

    Returns:
        the path written.
    """
    from keras_robust.generation.image_grid import save_image_grid

    images = np.asarray(images, dtype="float32")
    gradients = np.asarray(gradients, dtype="float32")
    if images.shape != gradients.shape:
        raise ValueError(
            f"`gradients` has shape {gradients.shape}, `images` {images.shape}: "
            "pass the gradients of these images."
        )
    rows = np.concatenate([images, gradient_images(gradients)])
    labels = ("input", "gradient") if row_labels is None else row_labels
    return save_image_grid(rows, path, nrow=len(images), row_labels=labels)
