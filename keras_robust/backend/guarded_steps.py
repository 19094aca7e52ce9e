"""`train_step`/`test_step` of the stateful backends (TensorFlow, PyTorch)."""

from keras import ops


class GuardedSteps:
    """Both steps run the backend's `_guarded_step` around its batch step.

    `_guarded_step(step, data)` runs `step(x, y, sample_weight)` on a finite
    batch and only counts a skipped one (`on_nonfinite_batch`); JAX's
    stateless steps take and return the state, so they are written apart.
    """

    def train_step(self, data):
        return self._guarded_step(self._train_on_batch, data)

    def test_step(self, data):
        return self._guarded_step(self._test_on_batch, data)


def perturb_weights(variables, perturbation):
    """Adds `perturbation` (AWP) to `variables`; returns what to restore.

    Returns [(variable, its value before)] for the perturbed ones, [] when
    `perturbation` is None. The values are copies, so restoring gives the
    unperturbed weights bit for bit (not w + v - v).
    """
    if perturbation is None:
        return []
    saved = []
    for variable, delta in zip(variables, perturbation):
        if delta is not None:
            saved.append((variable, ops.copy(variable.value)))
            variable.assign(variable.value + delta)
    return saved


def restore_weights(variables, saved):
    """Undoes `perturb_weights` (after the gradient, before the update)."""
    del variables
    for variable, value in saved:
        variable.assign(value)
