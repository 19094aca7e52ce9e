"""`train_step`/`test_step` of the stateful backends (TensorFlow, PyTorch)."""


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
