"""PyTorch plumbing: an eager training step and `torch.autograd` input gradients.

Keras' torch backend runs op by op (`jit_compile="auto"` means no
`torch.compile`), so the step is plain Python: a Python `if` on the batch's
finiteness costs one device-to-host read, and attacks are not compiled.
"""

import base64
import warnings

import keras
import torch

from keras_robust.backend.guarded_steps import GuardedSteps
from keras_robust.backend.guarded_steps import perturb_weights
from keras_robust.backend.guarded_steps import restore_weights


def input_gradient(fn, x):
    """Gradient of the scalar `fn(x)` with respect to the tensor `x`.

    `torch.autograd.grad` with respect to `x` alone: nothing is written into
    the weights' `.grad`, so an attack inside a training step leaves the
    weight gradient alone. Grad mode is switched on because Keras runs
    `evaluate` and `predict` under `torch.no_grad()`. Inputs that do not
    reach the value get a zero gradient, not `None`.
    """
    gradient, _ = input_gradient_with_aux(lambda x: (fn(x), ()), x)
    return gradient


def input_gradient_with_aux(fn, x):
    """(d value / dx, aux) for `fn(x) -> (scalar value, aux)`, in one pass.

    `aux` (e.g. the logits) is returned detached.
    """
    x = keras.ops.convert_to_tensor(x).detach()
    with torch.enable_grad():
        x.requires_grad_(True)
        value, aux = fn(x)
        if value.requires_grad:
            (gradient,) = torch.autograd.grad(value, x, allow_unused=True)
        else:
            gradient = None
    if gradient is None:
        gradient = torch.zeros_like(x)
    return gradient.detach(), _detached(aux)


def weight_gradient(fn, values):
    """Gradients of the scalar `fn(values)` with respect to a list of tensors.

    `torch.autograd.grad` on detached copies: nothing is written into the
    parameters' `.grad`.
    """
    values = [keras.ops.convert_to_tensor(v).detach() for v in values]
    with torch.enable_grad():
        for value in values:
            value.requires_grad_(True)
        gradients = torch.autograd.grad(fn(values), values, allow_unused=True)
    return [
        torch.zeros_like(v) if g is None else g.detach()
        for v, g in zip(values, gradients)
    ]


def weight_jvp(fn, values, tangents):
    """(fn(values), d fn(values + t tangents) / dt at t = 0): forward mode.

    `torch.func.jvp` runs the forward pass on dual tensors (no backward
    pass); grad mode is irrelevant to it.
    """
    values = tuple(keras.ops.convert_to_tensor(v).detach() for v in values)
    tangents = tuple(
        keras.ops.convert_to_tensor(t).to(v.dtype).detach()
        for t, v in zip(tangents, values)
    )
    output, tangent = torch.func.jvp(lambda *v: fn(list(v)), values, tangents)
    return output.detach(), tangent.detach()


# Set while a `RobustTrainer` step runs eagerly. The step's batch was checked
# before `fit`/`evaluate` started (as on TensorFlow and JAX, whose compiled
# steps skip the value checks), so the attacks and losses inside it must
# not check it again: each check read the batch back to the host and ran
# one more forward pass (about 10% of a tiny model's eager AT step).
_INSIDE_STEP = [False]


def is_tracing(x):
    """True under `torch.compile`'s tracing and inside an eager robust step.

    Under `torch.compile`, value checks would also break the traced graph
    (Dynamo cannot trace numpy conversions), splitting one step into dozens
    of compiled pieces.
    """
    del x
    return _INSIDE_STEP[0] or torch.compiler.is_compiling()


def fori_loop(lower, upper, body, init):
    """`keras.ops.fori_loop`: variables a body advances are assigned in place."""
    return keras.ops.fori_loop(lower, upper, body, init)


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """`keras.ops.while_loop` (see `fori_loop`)."""
    return keras.ops.while_loop(cond, body, loop_vars, maximum_iterations)


def resolve_jit_compile(jit_compile):
    """`"auto"` is eager, as Keras' own torch default (no `torch.compile`)."""
    if jit_compile == "auto":
        return False
    return bool(jit_compile)


def use_fast_compiling_random():
    """Nothing to do: PyTorch draws random numbers eagerly."""
    return False


def compiles_first_attack_call(iterations):
    """False: attacks run eagerly on PyTorch (`compile_attack` returns None)."""
    del iterations
    return False


def compile_function(fn, jit_compile=True):
    """`fn` itself: op-by-op PyTorch is what the torch backend runs.

    `torch.compile` is not used: it recompiles on every new attack shape and
    hits its recompile limits inside Keras' layers.
    """
    del jit_compile
    return fn


def compile_attack(perturb, forward, variables, seed, draw_seed, jit_compile=False):
    """None: attacks run eagerly on the torch backend (nothing to reuse)."""
    del perturb, forward, variables, seed, draw_seed, jit_compile
    return None


def replica_mean(values):
    """`values` as they are: Keras' PyTorch trainer has no replicas."""
    return list(values)


def global_rng_state():
    """torch's global RNG states (CPU, and each CUDA device), as text.

    On PyTorch, Keras shuffles arrays (`RandomSampler`; every `DataLoader`
    iterator also draws a seed) and draws the masks of `Dropout` layers
    built without a `seed` from these generators, not from a
    `SeedGenerator`, so an exact resume must restore them.
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "cpu": _bytes_to_text(torch.get_rng_state()),
        "cuda": [_bytes_to_text(state) for state in cuda],
    }


def set_global_rng_state(state):
    """Restores what `global_rng_state()` returned."""
    torch.set_rng_state(_text_to_bytes(state["cpu"]))
    cuda = [_text_to_bytes(text) for text in state["cuda"]]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        warnings.warn(
            f"The checkpoint holds torch RNG states of {len(cuda)} CUDA "
            f"devices, this process has {torch.cuda.device_count()}: they are "
            "not restored, so this run will not match an uninterrupted one "
            "exactly.",
            stacklevel=3,
        )


def _bytes_to_text(tensor):
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _text_to_bytes(text):
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


class RobustTrainer(GuardedSteps, keras.Model):
    """`train_step`/`test_step` for `RobustModel` on PyTorch (eager).

    The attack's input gradients come from `torch.autograd.grad` with
    respect to the input only, so they never touch the weights' `.grad`;
    the weight gradient is one `backward()` of the method's objective. A
    batch with NaN/Inf values is not run at all: only `skipped_batches`
    counts it. `keras.distribution` has no torch support in Keras 3.15:
    data-parallel training is for the JAX and TensorFlow backends.
    """

    def _guarded_step(self, step, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not bool(self.batch_is_finite(x, y, sample_weight)):
            return self.count_skipped_batches(True)
        if torch.compiler.is_compiling():
            return step(x, y, sample_weight)
        outer, _INSIDE_STEP[0] = _INSIDE_STEP[0], True
        try:
            return step(x, y, sample_weight)
        finally:
            _INSIDE_STEP[0] = outer

    def _train_on_batch(self, x, y, sample_weight):
        x_adv = _detached(self.generate_adversarial(x, y, training=True))
        variables = self.trainable_variables
        with torch.no_grad():
            unperturbed = perturb_weights(
                variables, self.weight_perturbation(x, x_adv, y, sample_weight)
            )
        self.zero_grad()
        loss, logits = self.compute_robust_loss(
            x, x_adv, y, sample_weight, training=True
        )
        if variables:
            self.optimizer.scale_loss(loss).backward()
            gradients = [variable.value.grad for variable in variables]
            with torch.no_grad():
                restore_weights(variables, unperturbed)
                self.optimizer.apply(gradients, variables)
        return self._metrics_of(x, y, loss, logits, sample_weight)

    def _test_on_batch(self, x, y, sample_weight):
        x_adv = _detached(self.generate_adversarial(x, y, training=False))
        with torch.no_grad():
            loss, logits = self.compute_robust_loss(
                x, x_adv, y, sample_weight, training=False
            )
        return self._metrics_of(x, y, loss, logits, sample_weight)

    def _metrics_of(self, x, y, loss, logits, sample_weight):
        with torch.no_grad():  # metric updates record no autograd graph
            return self.compute_robust_metrics(x, y, loss, logits, sample_weight)


def _detached(structure):
    return keras.tree.map_structure(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, structure
    )


__all__ = [
    "RobustTrainer",
    "compile_attack",
    "compile_function",
    "compiles_first_attack_call",
    "fori_loop",
    "global_rng_state",
    "input_gradient",
    "input_gradient_with_aux",
    "is_tracing",
    "replica_mean",
    "resolve_jit_compile",
    "set_global_rng_state",
    "use_fast_compiling_random",
    "while_loop",
    "weight_gradient",
    "weight_jvp",
]
