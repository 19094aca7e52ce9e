"""Objectives and energies at extreme logits (entries of +-1e4, float32).

Every public function of `kr.losses` and `kr.energy` gets float32 logits with
entries of +-1e4: one huge correct logit, one huge wrong logit, all logits
equal, natural and adversarial logits far apart, random signs, and near ties
at 1e4 (probabilities that are neither 0 nor 1 although the logits are
huge). Outputs are compared with float64 numpy references written here in a
stable form (max-subtracted logsumexp, log-softmax, `rel_entr`), not only
checked for finiteness. Gradients with respect to the logits
(`kr.backend.input_gradient`) must be finite and, where the reference is
differentiable at the point, equal central differences of the float64
reference. The last tests check that `keras.callbacks.TerminateOnNaN` stops a
`RobustModel` whose loss becomes NaN, on the backend under test.
"""

import keras
import numpy as np
import pytest
from keras import ops
from scipy.special import rel_entr

import keras_robust as kr
from tests.helpers import to_numpy

BIG = 1e4
B, K = 6, 10
Y = np.array([0, 3, 9, 1, 5, 7])
ROWS = np.arange(B)
# Positive weights of the per-sample outputs in the scalar that is
# differentiated (a plain sum could hide a wrong sign in one sample).
SUM_WEIGHTS = np.array([1.0, 0.7, 1.3, 0.4, 1.9, 0.9])
# DyART margin weights, zero for samples without a boundary point.
MARGIN_WEIGHTS = np.array([0.0, 0.5, 2.0, 0.0, 1e-3, 7.0], dtype="float32")


# ---- the extreme logits: (natural, adversarial), float32, (B, K) ----------


def _put(z, columns, value):
    z[ROWS, np.asarray(columns) % K] = value
    return z


def _filled(value):
    return np.full((B, K), value, dtype=np.float64)


def _correct_huge(rng):
    natural = _put(rng.normal(0.0, 3.0, (B, K)), Y, BIG)
    adversarial = _put(_filled(-BIG), Y, BIG)
    return natural, adversarial


def _wrong_huge(rng):
    natural = _put(rng.normal(0.0, 3.0, (B, K)), Y + 1, BIG)
    adversarial = _put(_put(_filled(-BIG), Y + 2, BIG), Y, 0.0)
    return natural, adversarial


def _all_equal(rng):
    natural = np.where(ROWS[:, None] % 2 == 0, BIG, -BIG) * np.ones((B, K))
    return natural, natural.copy()


def _far_apart(rng):
    return _put(_filled(-BIG), Y, BIG), _put(_filled(-BIG), Y + 3, BIG)


def _random_signs(rng):
    def signs():
        return BIG * rng.choice([-1.0, 1.0], size=(B, K))

    return signs(), signs()


def _near_ties(rng):
    def offsets():
        return np.round(rng.uniform(0.1, 3.0, B) * 64) / 64  # exact at 1e4

    natural = _filled(-BIG)
    _put(natural, Y, BIG)
    _put(natural, Y + 1, BIG - offsets())
    _put(natural, Y + 2, BIG - offsets())
    adversarial = _filled(-BIG)
    _put(adversarial, Y, BIG - offsets())
    _put(adversarial, Y + 4, BIG)
    _put(adversarial, Y + 5, BIG - offsets())
    return natural, adversarial


CASES = {
    "correct_huge": _correct_huge,
    "wrong_huge": _wrong_huge,
    "all_equal": _all_equal,
    "far_apart": _far_apart,
    "random_signs": _random_signs,
    "near_ties": _near_ties,
}


def make_case(name):
    rng = np.random.default_rng(sorted(CASES).index(name))
    natural, adversarial = CASES[name](rng)
    return natural.astype("float32"), adversarial.astype("float32")


# ---- float64 references, stable ------------------------------------------


def np_logsumexp(z):
    top = z.max(-1, keepdims=True)
    return (top + np.log(np.exp(z - top).sum(-1, keepdims=True)))[..., 0]


def np_log_softmax(z):
    return z - np_logsumexp(z)[..., None]


def np_softmax(z):
    return np.exp(np_log_softmax(z))


def np_ce(y, z):
    return -np_log_softmax(z)[ROWS, y]


def np_soft_ce(targets, z):
    return -(targets * np_log_softmax(z)).sum(-1)


def np_kl(zp, zq):
    log_p, log_q = np_log_softmax(zp), np_log_softmax(zq)
    return (np.exp(log_p) * (log_p - log_q)).sum(-1)


def np_trades(y, zn, za, beta):
    return np.mean(np_ce(y, zn) + beta * np_kl(zn, za))


def np_mart(y, zn, za, beta):
    p, q = np_softmax(zn), np_softmax(za)
    others = q.copy()
    others[ROWS, y] = -1.0
    boosted = np_ce(y, za) - np.log(1.0001 - others.max(-1) + 1e-12)
    kl = (p * (np_log_softmax(zn) - np.log(q + 1e-12))).sum(-1)
    return np.mean(boosted + beta * kl * (1.0000001 - p[ROWS, y]))


def np_weat_weights(energy):
    return 1.0 / np.logaddexp(0.0, np.abs(energy))  # 1 / softplus(|E|)


def np_weat(y, zn, za, beta, variant, normalize, weights_from):
    # The weights are constants of the objective (stop-gradiented): they come
    # from `weights_from`, the unperturbed natural logits.
    weights = np_weat_weights(-np_logsumexp(weights_from))
    if normalize:
        weights = weights / weights.mean()
    ce = np_ce(y, za if variant == "adv" else zn)
    # log(q + 1e-12) in the KL, as WEAT_loss.py (lines 89, 140) and MART.
    floored = np.log(np_softmax(za) + 1e-12)
    kl = (np_softmax(zn) * (np_log_softmax(zn) - floored)).sum(-1)
    return np.mean(weights * (ce + beta * kl))


def np_distance(p, q, log_p, log_q, name):
    if name == "se":
        return ((p - q) ** 2).sum(-1)
    if name in ("js", "sqrt_js"):
        m = (p + q) / 2
        value = 0.5 * (rel_entr(p, m) + rel_entr(q, m)).sum(-1)
        return value if name == "js" else np.sqrt(value)
    if name == "l1_squared":
        return np.abs(p - q).sum(-1) ** 2
    if name == "kl":
        return (p * (log_p - log_q)).sum(-1)
    if name == "sqrt_kl":
        return np.sqrt(np.maximum((p * (log_p - log_q)).sum(-1), 0.0))
    if name == "reverse_sqrt_kl":
        return np.sqrt(np.maximum((q * (log_q - log_p)).sum(-1), 0.0))
    if name == "linf":
        return np.abs(p - q).max(-1)
    order = float(name[1:])
    return (np.abs(p - q) ** order).sum(-1) ** (1.0 / order)


def np_probability_distance(p, q, name):
    # The documented floor of the logarithms of given probabilities.
    log_p, log_q = np.log(np.maximum(p, 1e-30)), np.log(np.maximum(q, 1e-30))
    return np_distance(p, q, log_p, log_q, name)


def np_score(y, zn, za, beta, name, clip_value=0.0, label_smoothing=0.0):
    log_p, log_q = np_log_softmax(zn), np_log_softmax(za)
    p, q = np.exp(log_p), np.exp(log_q)
    spread = label_smoothing / (K - 1)
    targets = np.full((B, K), spread)
    targets[ROWS, y] = 1.0 - label_smoothing
    natural = ((p - targets) ** 2).sum(-1)
    robust = np.maximum(np_distance(p, q, log_p, log_q, name) - clip_value, 0.0)
    return np.mean(natural + beta * robust)


def np_consistency(z1, z2, temperature, floor=1e-8):
    p, q = np_softmax(z1 / temperature), np_softmax(z2 / temperature)
    log_m = np.log(np.maximum(0.5 * (p + q), floor))

    def kl(r):
        entropy = np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)
        return np.sum(entropy - r * log_m, axis=-1)

    return np.mean(0.5 * (kl(p) + kl(q)))


def np_soft_margin(z, y, temperature):
    others = z.copy()
    others[ROWS, y] = -np.inf
    if temperature is None:
        return z[ROWS, y] - others.max(-1)
    return z[ROWS, y] - np_logsumexp(temperature * others) / temperature


def np_dyart(y, zn, za, weights, lam, temperature):
    phi = np_soft_margin(za, y, temperature)
    boundary = np.where(weights > 0, weights * phi, 0.0)
    return np.mean(np_ce(y, zn) - lam * boundary)


def np_decomposition(zn, za):
    conditional = (np_softmax(zn) * (zn - za)).sum(-1)
    return conditional, np_logsumexp(za) - np_logsumexp(zn)


SOFT_TARGETS = np.full((B, K), 0.02)
SOFT_TARGETS[ROWS, Y] = 0.82


# ---- what is tested: name -> (keras_robust, reference, options) ------------
#
# `kr_fn(zn, za)` and `np_fn(zn, za, zn0)` return a per-sample vector, a
# scalar or a tuple of vectors; `zn0` is the unperturbed natural logits (for
# WEAT's constant weights). `atol` is added to the default tolerances where
# the definition itself subtracts numbers of size 1e4 (float32 resolution
# there is 1e-3). `kinks` lists the cases where the reference is not
# differentiable (ties in an argmax or a k-way max, k > 2): the gradient is
# then only checked to be finite.

TIE_CASES = frozenset({"all_equal", "random_signs"})


def _spec(kr_fn, np_fn, atol=0.0, kinks=frozenset()):
    return {"kr": kr_fn, "np": np_fn, "atol": atol, "kinks": kinks}


SPECS = {
    "cross_entropy": _spec(
        lambda zn, za: kr.losses.cross_entropy(Y, zn),
        lambda zn, za, zn0: np_ce(Y, zn),
    ),
    "cross_entropy_soft_labels": _spec(
        lambda zn, za: kr.losses.cross_entropy(SOFT_TARGETS, za),
        lambda zn, za, zn0: np_soft_ce(SOFT_TARGETS, za),
    ),
    "kl_divergence": _spec(
        lambda zn, za: kr.losses.kl_divergence(zn, za),
        lambda zn, za, zn0: np_kl(zn, za),
    ),
    "adversarial_cross_entropy_loss": _spec(
        lambda zn, za: kr.losses.adversarial_cross_entropy_loss(Y, za),
        lambda zn, za, zn0: np.mean(np_ce(Y, za)),
    ),
    "trades_loss": _spec(
        lambda zn, za: kr.losses.trades_loss(Y, zn, za, beta=6.0),
        lambda zn, za, zn0: np_trades(Y, zn, za, 6.0),
    ),
    "mart_loss": _spec(
        lambda zn, za: kr.losses.mart_loss(Y, zn, za, beta=6.0),
        lambda zn, za, zn0: np_mart(Y, zn, za, 6.0),
        kinks=TIE_CASES,  # ties in the argmax over the wrong classes
    ),
    "weat_loss_adv": _spec(
        lambda zn, za: kr.losses.weat_loss(Y, zn, za, beta=6.0, variant="adv"),
        lambda zn, za, zn0: np_weat(Y, zn, za, 6.0, "adv", False, zn0),
    ),
    "weat_loss_nat_normalized": _spec(
        lambda zn, za: kr.losses.weat_loss(
            Y, zn, za, beta=2.0, variant="nat", normalize_weights=True
        ),
        lambda zn, za, zn0: np_weat(Y, zn, za, 2.0, "nat", True, zn0),
    ),
    "weat_weights": _spec(
        lambda zn, za: kr.losses.weat_weights(kr.energy.marginal_energy(zn)),
        lambda zn, za, zn0: np_weat_weights(-np_logsumexp(zn)),
    ),
    "consistency_loss": _spec(
        lambda zn, za: kr.losses.consistency_loss(zn, za, temperature=0.5),
        lambda zn, za, zn0: np_consistency(zn, za, 0.5),
    ),
    "soft_margin_t5": _spec(
        lambda zn, za: kr.losses.soft_margin(zn, Y, temperature=5.0),
        lambda zn, za, zn0: np_soft_margin(zn, Y, 5.0),
    ),
    "soft_margin_t0.5": _spec(
        lambda zn, za: kr.losses.soft_margin(za, Y, temperature=0.5),
        lambda zn, za, zn0: np_soft_margin(za, Y, 0.5),
    ),
    "soft_margin_hard": _spec(
        lambda zn, za: kr.losses.soft_margin(zn, Y, temperature=None),
        lambda zn, za, zn0: np_soft_margin(zn, Y, None),
        # k-way ties (k > 2) in the max over the other classes
        kinks=TIE_CASES | {"far_apart"},
    ),
    "dyart_loss": _spec(
        lambda zn, za: kr.losses.dyart_loss(
            Y, zn, za, MARGIN_WEIGHTS, lam=1000.0, temperature=5.0
        ),
        lambda zn, za, zn0: np_dyart(
            Y, zn, za, MARGIN_WEIGHTS.astype(np.float64), 1000.0, 5.0
        ),
    ),
    "marginal_energy": _spec(
        lambda zn, za: kr.energy.marginal_energy(zn),
        lambda zn, za, zn0: -np_logsumexp(zn),
    ),
    "joint_energy": _spec(
        lambda zn, za: kr.energy.joint_energy(za, Y),
        lambda zn, za, zn0: -za[ROWS, Y],
    ),
    # E(x) - E(x*) subtracts two energies of size 1e4, each of which float32
    # holds to half an ulp (4.9e-4); the conditional part likewise.
    "trades_decomposition": _spec(
        lambda zn, za: kr.energy.trades_decomposition(zn, za),
        lambda zn, za, zn0: np_decomposition(zn, za),
        atol=4 * float(np.spacing(np.float32(BIG))),
    ),
}

LP_NAMES = ("l1", "l2", "l1.5", "l4", "linf")
# Points where a distance is not differentiable: p == q (`all_equal`) for the
# norms and square roots (cones at 0), and p_k == q_k != 0 for some k or
# k-way ties in max_k |p_k - q_k| (`random_signs`) for l1 and linf.
DISTANCE_KINKS = {
    "sqrt_js": {"all_equal"},
    "sqrt_kl": {"all_equal"},
    "reverse_sqrt_kl": {"all_equal"},
    "l1_squared": {"random_signs"},
    "l1": {"all_equal", "random_signs"},
    "l2": {"all_equal"},
    "l1.5": {"all_equal"},
    "l4": {"all_equal"},
    "linf": {"all_equal", "random_signs"},
}
for _name in kr.losses.SCORE_DISTANCES + LP_NAMES:
    _kinks = frozenset(DISTANCE_KINKS.get(_name, ()))
    SPECS[f"score_loss_{_name}"] = _spec(
        lambda zn, za, name=_name: kr.losses.score_loss(
            Y, zn, za, beta=3.0, distance=name
        ),
        lambda zn, za, zn0, name=_name: np_score(Y, zn, za, 3.0, name),
        kinks=_kinks,
    )
    # From probabilities: the softmax of the extreme logits (exact 0s and 1s).
    SPECS[f"probability_distance_{_name}"] = _spec(
        lambda zn, za, name=_name: kr.losses.probability_distance(
            ops.softmax(zn, axis=-1), ops.softmax(za, axis=-1), name
        ),
        lambda zn, za, zn0, name=_name: np_probability_distance(
            np_softmax(zn), np_softmax(za), name
        ),
        kinks=_kinks,
    )
SPECS["score_loss_kl_clipped_smoothed"] = _spec(
    lambda zn, za: kr.losses.score_loss(
        Y, zn, za, beta=4.0, distance="kl", clip_value=0.1, label_smoothing=0.1
    ),
    lambda zn, za, zn0: np_score(Y, zn, za, 4.0, "kl", 0.1, 0.1),
)


# ---- helpers ---------------------------------------------------------------


def _outputs(value):
    """A tuple of float64 numpy outputs."""
    if isinstance(value, (tuple, list)):
        return tuple(np.asarray(to_numpy(v), dtype=np.float64) for v in value)
    return (np.asarray(to_numpy(value), dtype=np.float64),)


def _scalar(value):
    """sum_i c_i out_i (per-sample outputs) or the output itself (a scalar)."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    total = 0.0
    for index, part in enumerate(parts):
        weights = SUM_WEIGHTS * (index + 1)
        if len(part.shape) == 0:
            total = total + part
        elif isinstance(part, np.ndarray):
            total = total + float(np.sum(weights * part))
        else:
            total = total + ops.sum(ops.convert_to_tensor(weights, "float32") * part)
    return total


def _numeric_gradient(fn, z, step=1e-3):
    """Central differences of a float64 function; exact to ~1e-7 here."""
    gradient = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (fn(up) - fn(down)) / (2 * step)
    return gradient


def _close(actual, expected, atol, rtol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual)), actual
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ---- the tests ---------------------------------------------------------------


def test_cases_are_extreme():
    # The inputs are what the module claims: float32, entries of +-1e4 in
    # every case, probabilities strictly between 0 and 1 in `near_ties`.
    for name in CASES:
        natural, adversarial = make_case(name)
        assert natural.dtype == adversarial.dtype == np.float32
        for z in (natural, adversarial):
            assert np.abs(z).max() == BIG
    p = np_softmax(make_case("near_ties")[0].astype(np.float64))
    assert np.all(p[ROWS, Y] < 0.9) and np.all(p[ROWS, Y] > 0.3)


def _check_value(entry, natural, adversarial, case):
    actual = _outputs(entry["kr"](natural, adversarial))
    natural64, adversarial64 = (
        natural.astype(np.float64),
        adversarial.astype(np.float64),
    )
    expected = entry["np"](natural64, adversarial64, natural64)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.shape == np.shape(want), case
        assert np.all(np.isfinite(got)), (case, got)
        np.testing.assert_allclose(
            got, want, rtol=2e-6, atol=1e-6 + entry["atol"], err_msg=case
        )


def _check_gradient(entry, natural, adversarial, case):
    natural64, adversarial64 = (
        natural.astype(np.float64),
        adversarial.astype(np.float64),
    )
    gradients = {
        "natural": kr.backend.input_gradient(
            lambda z: _scalar(entry["kr"](z, ops.convert_to_tensor(adversarial))),
            ops.convert_to_tensor(natural),
        ),
        "adversarial": kr.backend.input_gradient(
            lambda z: _scalar(entry["kr"](ops.convert_to_tensor(natural), z)),
            ops.convert_to_tensor(adversarial),
        ),
    }
    references = {
        "natural": lambda z: _scalar(entry["np"](z, adversarial64, natural64)),
        "adversarial": lambda z: _scalar(entry["np"](natural64, z, natural64)),
    }
    for which, gradient in gradients.items():
        message = f"{case}, d/d {which} logits"
        gradient = np.asarray(to_numpy(gradient), dtype=np.float64)
        assert gradient.shape == (B, K), message
        assert np.all(np.isfinite(gradient)), (message, gradient)
        if case in entry["kinks"]:
            continue
        point = natural64 if which == "natural" else adversarial64
        expected = _numeric_gradient(references[which], point)
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(
            gradient, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=message
        )


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_values_and_gradients_equal_float64_references(spec):
    entry = SPECS[spec]
    for case in sorted(CASES):
        natural, adversarial = make_case(case)
        _check_value(entry, natural, adversarial, case)
        _check_gradient(entry, natural, adversarial, case)


def test_weat_weights_of_extreme_energies():
    energy = np.array([-1e4, -1.0, 0.0, 1e-3, 1.0, 1e4, -3e4, 3e4], "float32")
    _close(
        to_numpy(kr.losses.weat_weights(energy)),
        np_weat_weights(energy.astype(np.float64)),
        atol=0.0,
        rtol=2e-6,
    )
    gradient = to_numpy(
        kr.backend.input_gradient(
            lambda e: ops.sum(kr.losses.weat_weights(e)),
            ops.convert_to_tensor(energy),
        )
    )
    assert np.all(np.isfinite(gradient))


def test_dyart_margin_weights_of_extreme_radii_and_gradients():
    alpha, r0 = 3.0, 16 / 255
    radius = np.array([0.0, 1e-30, 0.5 * r0, 0.5 * r0, 0.5 * r0, 0.5 * r0, 1e4, r0])
    grad_l1 = np.array([1e-30, 1.0, 0.0, 1e-30, 1e4, 1e30, 1.0, 1.0])
    actual = to_numpy(
        kr.losses.dyart_margin_weights(
            radius.astype("float32"), grad_l1.astype("float32"), alpha=alpha, r0=r0
        )
    )
    radius32 = radius.astype("float32").astype(np.float64)
    usable = (radius32 < np.float32(r0)) & (grad_l1 > 0)
    expected = np.where(
        usable, np.exp(-alpha * radius32) / np.where(grad_l1 > 0, grad_l1, 1.0), 0.0
    )
    _close(actual, expected, atol=0.0, rtol=2e-6)
    assert actual[0] == pytest.approx(1e30, rel=1e-6)
    assert actual[2] == actual[6] == actual[7] == 0.0


def test_weighted_mean_of_extreme_losses():
    per_sample = np.array([2e4, 0.0, 1e4, 3.5, 6e4 + 0.25], "float32")
    weights = np.array([0.5, 2.0, 0.0, 1.0, 1e-3], "float32")
    per64, weights64 = per_sample.astype(np.float64), weights.astype(np.float64)
    _close(
        to_numpy(kr.losses.weighted_mean(per_sample, weights)),
        (per64 * weights64).sum() / len(per64),
        atol=0.0,
        rtol=2e-6,
    )
    _close(
        to_numpy(kr.losses.weighted_mean(per_sample)), per64.mean(), atol=0, rtol=2e-6
    )


# What the tests above call, per public function: a new loss or energy
# function must be added to them (and here).
COVERED = {
    "adversarial_cross_entropy_loss": ["adversarial_cross_entropy_loss"],
    "consistency_loss": ["consistency_loss"],
    "cross_entropy": ["cross_entropy", "cross_entropy_soft_labels"],
    "dyart_loss": ["dyart_loss"],
    "dyart_margin_weights": [],  # test_dyart_margin_weights_of_extreme_...
    "kl_divergence": ["kl_divergence"],
    "mart_loss": ["mart_loss"],
    "probability_distance": ["probability_distance_se"],
    "score_loss": ["score_loss_se", "score_loss_kl_clipped_smoothed"],
    "soft_margin": ["soft_margin_t5", "soft_margin_t0.5", "soft_margin_hard"],
    "trades_loss": ["trades_loss"],
    "weat_loss": ["weat_loss_adv", "weat_loss_nat_normalized"],
    "weat_weights": ["weat_weights"],  # and test_weat_weights_of_extreme_...
    "weighted_mean": [],  # test_weighted_mean_of_extreme_losses
    "marginal_energy": ["marginal_energy"],
    "joint_energy": ["joint_energy"],
    "trades_decomposition": ["trades_decomposition"],
}


def test_every_public_loss_and_energy_function_is_covered():
    losses = {
        name
        for name in kr.losses.__all__
        if callable(getattr(kr.losses, name)) and not name.isupper()
    }
    # kr.energy also exports the report and plotting tools, which take a
    # model and an attack, not logits.
    energies = {"marginal_energy", "joint_energy", "trades_decomposition"}
    assert energies <= set(kr.energy.__all__)
    assert set(COVERED) == losses | energies
    for specs in COVERED.values():
        assert set(specs) <= set(SPECS)
    for name in kr.losses.SCORE_DISTANCES:
        assert f"score_loss_{name}" in SPECS
        assert f"probability_distance_{name}" in SPECS


# ---- TerminateOnNaN ------------------------------------------------------------

METHODS = ("AT", "TRADES", "MART", "WEAT", "SCORE", "FastAT", "DyART")
BATCH, NUM_SAMPLES, EPOCHS = 16, 64, 3
NAN_SAMPLE = 40  # in the third batch (index 2) of the first epoch


class _LossLog(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


class _NaNLogitsForWhiteImages(keras.layers.Layer):
    """In training mode, adds NaN to the logits of (nearly) white images.

    A finite input that yields a NaN loss (NaN/Inf inputs and sample weights
    never reach the step: tests/models/test_nonfinite_batches.py). The attack
    runs in inference mode, so it still sees finite logits and gradients.
    """

    def call(self, images, logits, training=False):
        if not training:
            return logits
        white = ops.mean(images, axis=(1, 2, 3)) > 0.9
        return logits + ops.where(white, np.nan, 0.0)[:, None]


def _tiny_model(method, optimizer=None, nan_for_white_images=False):
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(4,), dense_units=0)
    if nan_for_white_images:
        images = keras.Input((8, 8, 1))
        net = keras.Model(images, _NaNLogitsForWhiteImages()(images, net(images)))
    kwargs = {"search_steps": 2} if method == "DyART" else {}
    if method not in ("FastAT", "DyART"):
        kwargs["steps"] = 2
    if nan_for_white_images:
        kwargs["attack_training_mode"] = False
    model = getattr(kr.models, method)(net, epsilon=0.1, seed=0, **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05))
    return model


def _fit_with_nan_loss(digits, method, callbacks):
    (x, y), _ = digits
    x = np.array(x[:NUM_SAMPLES])
    x[NAN_SAMPLE] = 1.0  # a white image: the loss of its batch is NaN
    model = _tiny_model(method, nan_for_white_images=True)
    log = _LossLog()
    history = model.fit(
        x,
        y[:NUM_SAMPLES],
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, log],
    )
    return model, history, log.losses


@pytest.mark.parametrize("method", METHODS)
def test_terminate_on_nan_stops_training_at_the_nan_batch(digits, method):
    model, history, losses = _fit_with_nan_loss(
        digits, method, [keras.callbacks.TerminateOnNaN()]
    )
    nan_batch = NAN_SAMPLE // BATCH
    assert len(losses) == nan_batch + 1  # stopped right after the NaN batch
    assert np.all(np.isfinite(losses[:nan_batch]))
    assert np.isnan(losses[nan_batch])
    assert model.stop_training
    assert len(history.history["loss"]) == 1  # 1 of EPOCHS epochs


def test_without_terminate_on_nan_training_runs_on(digits):
    # The control of the test above: the NaN alone does not stop `fit`.
    _, history, losses = _fit_with_nan_loss(digits, "TRADES", [])
    assert len(losses) == EPOCHS * NUM_SAMPLES // BATCH
    assert len(history.history["loss"]) == EPOCHS
    assert np.all(np.isnan(history.history["loss"]))


def test_terminate_on_nan_can_raise(digits):
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        _fit_with_nan_loss(
            digits, "AT", [keras.callbacks.TerminateOnNaN(raise_error=True)]
        )


def test_terminate_on_nan_stops_a_diverging_model(digits):
    # A huge learning rate: the weights overflow within a few updates and the
    # loss becomes NaN or Inf, which TerminateOnNaN catches.
    (x, y), _ = digits
    model = _tiny_model("AT", keras.optimizers.SGD(1e38))
    log = _LossLog()
    history = model.fit(
        x[:NUM_SAMPLES],
        y[:NUM_SAMPLES],
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN(), log],
    )
    assert np.isfinite(log.losses[0])
    assert not np.isfinite(log.losses[-1])
    assert np.all(np.isfinite(log.losses[:-1]))
    assert len(log.losses) < EPOCHS * NUM_SAMPLES // BATCH
    assert len(history.history["loss"]) == 1
    weights = [to_numpy(w) for w in model.classifier.trainable_weights]
    assert not all(np.all(np.isfinite(w)) for w in weights)
