"""Adversarial weight perturbation (AWP, Wu et al. 2020) for any method.

The reference (`csdongxian/AWP`, `AT_AWP/utils_awp.py` and
`trades_AWP/utils_awp.py`) does, at every step after `awp_warmup` epochs:

1. copy the model into a proxy (train mode) and take ONE SGD step on the
   proxy ascending the method's adversarial loss at the x* already crafted
   (`calc_awp`: AT: CE(f(x*), y); TRADES: CE(f(x), y) + beta KL);
2. per weight tensor with more than one dimension (conv and dense kernels;
   not biases, not BatchNorm), the direction d_l = w'_l - w_l scaled to the
   layer's norm: v_l = ||w_l|| / (||d_l|| + 1e-20) * d_l (`diff_in_weights`);
3. add gamma * v to the weights, compute the method's loss and its gradient
   there (train mode: BatchNorm statistics move as in a normal step), and
4. take the optimizer step, then subtract gamma * v (`restore`).

Since d_l is the proxy's learning rate times the gradient, v_l =
||w_l|| g_l / ||g_l|| whatever that rate is. Here it is one mechanism for
every method: the ascent is on the method's own objective
(`compute_logits` + `compute_objective`, without the weight regularisers,
as the reference's proxy has no weight decay), its BatchNorm updates are
discarded (the proxy's), and the update is the optimizer applied to the
UNPERTURBED weights with the gradient taken at the perturbed ones (exactly
w - lr * update; the reference's add-then-subtract differs by rounding).
Coupled L2 weight decay (a kernel regulariser, as `kr.architectures` use)
is then evaluated at the perturbed weights, as PyTorch's SGD
`weight_decay` is in the reference.
"""

import keras
from keras import ops

from keras_robust import backend
from keras_robust.utils import validation

# The reference's guard against a zero direction (`EPS` in utils_awp.py).
_EPS = 1e-20


@keras.saving.register_keras_serializable(package="keras_robust")
class AWP:
    """Adversarial weight perturbation, an option of every `kr.models` method.

    Pass it as `awp=` to a method (AT, TRADES, MART, WEAT, SCORE, FastAT):
    each training step then perturbs the kernels by `gamma` times their norm
    in the direction of one ascent step of the method's adversarial loss,
    takes the weight gradient at the perturbed weights and updates the
    unperturbed ones (see the module docstring for the rule). Costs about
    one more forward-backward pass per step. Compiled, on every backend;
    under `tf.distribute` the ascent gradient is averaged over the replicas,
    so every replica perturbs by the global batch's direction, as one device
    does.

    Args:
        gamma: relative size of the perturbation, >= 0 (reference: 5e-3
            for TRADES-AWP, 1e-2 for AT-AWP; 0 disables it).
        warmup_epochs: epochs of `fit` without perturbation (reference:
            10 for TRADES-AWP, 0 for AT-AWP). The model counts epochs in a
            non-trainable variable `awp_epoch`, set as each epoch begins.

    Example:
    >>> model = kr.models.TRADES(net, beta=6.0, awp=kr.models.AWP(gamma=5e-3, warmup_epochs=10))
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    >>> model.fit(train, epochs=100)

    Reference: Wu, Xia and Wang, "Adversarial Weight Perturbation Helps
    Robust Generalization", NeurIPS 2020.
    """

    def __init__(self, gamma=5e-3, warmup_epochs=0):
        self.gamma = validation.positive_number(gamma, "gamma", allow_zero=True)
        self.warmup_epochs = validation.non_negative_integer(
            warmup_epochs, "warmup_epochs"
        )

    def get_config(self):
        return {"gamma": self.gamma, "warmup_epochs": self.warmup_epochs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"AWP(gamma={self.gamma}, warmup_epochs={self.warmup_epochs})"

    def perturbation(self, model, x, x_adv, y, sample_weight=None):
        """gamma * v for each of `model.trainable_variables` (None if unperturbed).

        Runs inside the training step with x* already crafted; reads the
        variables' current values (also inside a JAX stateless scope).
        """
        variables = list(model.trainable_variables)
        kernels = [i for i, v in enumerate(variables) if len(v.shape) > 1]
        if not kernels:
            return None
        values = [v.value for v in variables]
        others = [(v, v.value) for v in model.non_trainable_variables]

        def adversarial_loss(kernel_values):
            current = list(values)
            for index, value in zip(kernels, kernel_values):
                current[index] = value
            # A throw-away scope: the proxy's BatchNorm updates are dropped.
            mapping = list(zip(variables, current)) + others
            with keras.StatelessScope(state_mapping=mapping):
                logits = tuple(model.compute_logits(x, x_adv, True))
                extras = {"extras": logits[2]} if len(logits) > 2 else {}
                return ops.cast(
                    model.compute_objective(
                        y, logits[0], logits[1], sample_weight, **extras
                    ),
                    "float32",
                )

        # Under tf.distribute each replica sees its slice of the batch; the
        # perturbation must be the global batch's on every replica.
        gradients = backend.replica_mean(
            backend.weight_gradient(adversarial_loss, [values[i] for i in kernels])
        )
        scale = self.gamma * ops.cast(
            ops.greater_equal(model.awp_epoch, float(self.warmup_epochs)), "float32"
        )
        result = [None] * len(variables)
        for index, gradient in zip(kernels, gradients):
            weight = ops.cast(values[index], "float32")
            gradient = ops.cast(gradient, "float32")
            direction = ops.norm(ops.reshape(weight, (-1,))) / (
                ops.norm(ops.reshape(gradient, (-1,))) + _EPS
            )
            result[index] = ops.cast(
                scale * direction * gradient, variables[index].dtype
            )
        return result


class AWPEpochCounter(keras.callbacks.Callback):
    """Writes fit's epoch index into `model.awp_epoch` as each epoch begins."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.awp_epoch.assign(float(epoch))


def check_awp(awp, method, supported):
    """`awp` validated for the method named `method` (None passes)."""
    if awp is None:
        return None
    if not isinstance(awp, AWP):
        raise TypeError(
            f"`awp` must be a kr.models.AWP(gamma=..., warmup_epochs=...), got "
            f"{type(awp).__name__}."
        )
    if not supported:
        raise ValueError(
            f"`awp` is not available for {method}: its objective is not one "
            "loss of (x, x*) that one weight ascent step can perturb (AT, "
            "TRADES, MART, WEAT, SCORE and FastAT support it)."
        )
    return awp
