"""Fuzzing kr.evaluation, kr.generation, kr.metrics, kr.datasets and the
energy report: constructor arguments and call inputs."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_robust as kr
from keras_robust.utils import validation
from tests.fuzzing import inputs
from tests.fuzzing.oracle import NAN
from tests.fuzzing.oracle import Target
from tests.fuzzing.oracle import assert_finite
from tests.fuzzing.oracle import choice
from tests.fuzzing.oracle import clip_args
from tests.fuzzing.oracle import clip_order
from tests.fuzzing.oracle import either
from tests.fuzzing.oracle import fixed
from tests.fuzzing.oracle import flag
from tests.fuzzing.oracle import fuzz
from tests.fuzzing.oracle import integer
from tests.fuzzing.oracle import norm
from tests.fuzzing.oracle import number
from tests.fuzzing.oracle import run_case
from tests.fuzzing.oracle import seed
from tests.fuzzing.oracle import seeded

pytestmark = pytest.mark.filterwarnings("ignore:`samples` looks like probabilities")

B = 3  # images per call
CLASSIFIER = inputs.classifier()  # built outside the strategies
FGSM = kr.attacks.FGSM(0.1)
VERBOSE = (0, 1, 2, "auto")


def model_arg():
    good = st.sampled_from([CLASSIFIER, kr.models.AT(CLASSIFIER)])
    return either(good, st.sampled_from([None, "model", 3]))


def clip_pair():
    good = st.sampled_from([(0.0, 1.0), [0, 1], (-1.0, 2.0)])
    bad = st.sampled_from([(1.0, 0.0), (0.5, 0.5), (0.0,), "01", (0.0, NAN), None])
    return either(good, bad, omit=True)


def labels_3(n):
    """Integer labels of 3 classes; bad: floats, 2-D, negative, strings."""
    good = st.sampled_from([np.arange(n) % 3, (np.arange(n) % 3).tolist()])
    bad = st.sampled_from(
        [np.full(n, 1.5), np.eye(3)[np.arange(n) % 3], -np.ones(n, int), ["a"] * n]
    )
    return either(good, bad)


def report(result, kwargs):
    assert 0 <= result.robust_accuracy <= result.clean_accuracy <= 1
    assert result.num_examples == B


def images_shape(shape):
    return lambda result, kwargs: assert_finite(result, shape)


def y_left_out(kwargs, bad):
    """Array images need their labels."""
    leaving_out = kwargs.get("y") is None and isinstance(kwargs.get("x"), np.ndarray)
    return {"y"} if leaving_out else set()


def threat_model(kwargs, bad):
    """Given attacks (all L-inf at FGSM's radius) must lie in the report's ball."""
    if bad & {"norm", "epsilon", "attacks"}:
        return set()
    if isinstance(kwargs.get("attacks", "standard"), str):
        return set()
    norm = validation.norm_name(kwargs.get("norm", "linf"), ("linf", "l2", "l1"))
    return {"attacks"} if norm != "linf" or kwargs["epsilon"] < FGSM.epsilon else set()


EVALUATE = Target(
    kr.evaluation.evaluate_robustness,
    {
        "model": model_arg(),
        "x": inputs.images(B),
        "y": either(*inputs.labels(B, 10), omit=True),
        "epsilon": number(omit=False),
        "norm": norm(l1=True),
        "attacks": choice(
            [FGSM, [FGSM], (FGSM, kr.attacks.PGD(0.1, steps=1)), {"fgsm": FGSM}],
            bad=("strong", [], {}, ["pgd"], 3, None),
        ),
        "batch_size": integer(),
        "seed": seed(none=False),
        "checks": fixed(False),
        "verbose": fixed(0),
    },
    cross=lambda kwargs, bad: y_left_out(kwargs, bad) | threat_model(kwargs, bad),
    result=report,
)


@fuzz(max_examples=12)
@given(data=st.data())
def test_evaluate_robustness(data):
    run_case(data, "evaluate_robustness", EVALUATE)


SAMPLER = kr.generation.LangevinSampler(
    CLASSIFIER,
    steps=2,
    initializer=kr.generation.UniformInitializer(inputs.IMAGE_SHAPE),
    seed=0,
)


def samples(result, kwargs):
    every = kwargs.get("return_trajectory", False)
    images = result if every is False else result[0]
    assert_finite(images, (B, *inputs.IMAGE_SHAPE))
    assert images.min() >= 0.0 and images.max() <= 1.0
    if every is not False:
        snapshots = SAMPLER.steps // (1 if every is True else every) + 1
        assert result[1].shape == (snapshots, B, *inputs.IMAGE_SHAPE)


@fuzz(max_examples=10)
@given(data=st.data())
def test_langevin_sample(data):
    spec = {
        "labels": inputs.labels(B, 10, batch=False),
        "seed": seed(),
        "return_trajectory": choice((False, True, 1, 2), bad=(0, 3, "x", 1.5)),
        "verbose": fixed(0),
    }
    run_case(
        data, "LangevinSampler.sample", Target(SAMPLER.sample, spec, result=samples)
    )


FIT_X = np.random.default_rng(0).uniform(0.2, 0.8, (6, 4, 4, 1)).astype("float32")
PCA = kr.generation.PCAInitializer(0.9, sigma=0.01).fit(FIT_X, np.arange(6) % 3)


def fit_args():
    return {
        "x": either(
            st.sampled_from([FIT_X, FIT_X.astype("float64")]),
            st.sampled_from([FIT_X * 255, FIT_X[:, 0, 0, 0], FIT_X[:0], None]),
        ),
        "y": either(
            st.sampled_from([np.arange(6) % 3, np.eye(3)[np.arange(6) % 3]]),
            st.sampled_from(
                [np.arange(6), np.arange(5) % 3, np.full(6, -1), ["a"] * 6]
            ),
        ),
    }


def fitted(initializer, kwargs):
    assert initializer.num_classes == 3
    assert_finite(initializer.sample([0, 2], rng=0), (2, 4, 4, 1))


CALLS = {
    "PCAInitializer.fit": Target(
        lambda **kw: kr.generation.PCAInitializer().fit(**kw), fit_args(), result=fitted
    ),
    "GaussianInitializer.fit": Target(
        lambda **kw: kr.generation.GaussianInitializer().fit(**kw),
        fit_args(),
        result=fitted,
    ),
    "Initializer.sample": Target(
        PCA.sample,
        {"labels": labels_3(4), "rng": seed()},
        result=images_shape((4, 4, 4, 1)),
    ),
    "image_grid": Target(
        kr.generation.image_grid,
        {
            "images": either(
                seeded(lambda r: r.uniform(size=(5, 4, 4, 3))),
                st.sampled_from(
                    [
                        np.zeros((5, 4, 4, 2)),
                        np.zeros((4, 4, 1)),
                        np.zeros((0, 4, 4, 1)),
                    ]
                    + [None, "images", [[1, "a"]]]
                ),
            ),
            "nrow": integer(none=True),
            "padding": integer(low=0),
            "pad_value": either(st.floats(-1, 1), st.sampled_from(["white", None])),
        },
        result=lambda grid, kwargs: assert_finite(grid),
    ),
}


@pytest.mark.parametrize("target", sorted(CALLS))
@fuzz(max_examples=30)
@given(data=st.data())
def test_generation_call(target, data):
    run_case(data, target, CALLS[target])


# ---- metrics on features (no InceptionV3: images get a flattening extractor)


def flatten(images):
    return np.asarray(images).reshape(len(images), -1)


def feature_set(n, d=4, reference=False, single=False):
    """(n, d) features or (n, 2, 2, 1) images in [0, 1] (d = 4 pixels);
    `single`: a single sample is bad (a covariance needs two)."""
    good = st.one_of(
        seeded(lambda r: r.normal(size=(n, d))),
        seeded(lambda r: r.uniform(size=(n, 2, 2, 1)).astype("float32")),
    )
    bad = [None, "features", np.full((n, d), NAN), np.zeros(n)]
    bad += ([] if reference else [np.zeros((n, d + 1))]) + single * [np.ones((1, d))]
    return either(good, st.sampled_from(bad))


def extractor_args():
    return {
        "feature_extractor": choice((flatten,), bad=("inception", 3), omit=False),
        "batch_size": integer(),
        "verbose": choice(VERBOSE, bad=(3, "yes", None)),
    }


def subset_fits(kwargs, bad):
    """KID subsets are drawn without replacement from each set."""
    if bad & {"subset_size", "real", "fake"}:
        return set()
    return set() if kwargs.get("subset_size", 1000) <= 5 else {"subset_size"}


def scores_kind(kwargs, bad):
    """Negative (logit) scores need `from_logits=True`; `splits` <= samples."""
    if "samples" in bad:
        return set()
    samples, more = kwargs["samples"], set()
    logits = np.min(samples) < 0 and kwargs.get("from_logits") is not True
    if logits and "from_logits" not in bad:
        more.add("samples")
    if "splits" not in bad and kwargs.get("splits", 10) > len(samples):
        more.add("splits")
    return more


def stats(d, reference=False):
    mean = seeded(lambda r: r.normal(size=d))
    covariance = seeded(lambda r: np.cov(r.normal(size=(d + 2, d)), rowvar=False))
    bad = [None, "mean", np.full(d, NAN)] + ([] if reference else [np.zeros(d + 1)])
    return either(mean, st.sampled_from(bad)), either(
        covariance, st.sampled_from([None, "cov", np.zeros((d, d + 1))])
    )


MU1, SIGMA1 = stats(3, reference=True)
MU2, SIGMA2 = stats(3)


def positive_float(result, kwargs):
    assert_finite(result)
    assert result >= 0


METRICS = {
    "frechet_distance": Target(
        kr.metrics.frechet_distance,
        {
            "real": feature_set(5, reference=True, single=True),
            "fake": feature_set(4, single=True),
            **extractor_args(),
        },
        result=positive_float,
    ),
    "kernel_inception_distance": Target(
        kr.metrics.kernel_inception_distance,
        {
            "real": feature_set(5, reference=True),
            "fake": feature_set(6),
            "subset_size": integer(low=2, high=5, omit=False),
            "num_subsets": integer(high=3),
            "seed": seed(),
            **extractor_args(),
        },
        subset_fits,
        result=lambda kid, kwargs: assert_finite(kid),  # can dip below 0
    ),
    "inception_score": Target(
        kr.metrics.inception_score,
        {
            "samples": either(
                st.one_of(
                    seeded(lambda r: r.dirichlet(np.ones(4), 6)),
                    seeded(lambda r: r.normal(size=(6, 4))),
                ),
                st.sampled_from([None, np.ones((6, 1)), np.zeros(6), "p"]),
            ),
            "splits": integer(high=8),
            "from_logits": choice((None, True, False), bad=("yes", 1.5)),
            "batch_size": integer(),
            "verbose": choice(VERBOSE, bad=(3, "yes", None)),
        },
        scores_kind,
        result=lambda score, kwargs: 1 - 1e-6 <= score.mean <= 4 + 1e-6,
    ),
    "frechet_distance_from_statistics": Target(
        kr.metrics.frechet_distance_from_statistics,
        {"mu1": MU1, "sigma1": SIGMA1, "mu2": MU2, "sigma2": SIGMA2},
        result=positive_float,
    ),
    "extract_features": Target(
        kr.metrics.extract_features,
        {"data": feature_set(5, reference=True), **extractor_args()},
        result=lambda features, kwargs: assert_finite(features, (5, 4)),
    ),
    "FeatureStatistics": Target(
        kr.metrics.FeatureStatistics,
        {"dim": integer(none=True)},
        result=lambda statistics, kwargs: statistics.count == 0,
    ),
}


@pytest.mark.parametrize("target", sorted(METRICS))
@fuzz(max_examples=30)
@given(data=st.data())
def test_metric(target, data):
    run_case(data, target, METRICS[target])


# ---- constructors ---------------------------------------------------------


def digits_split_fits(kwargs):
    """A stratified split of the 1797 digits keeps 10 (one per class) a side."""
    test = math.ceil(kwargs.get("test_fraction", 0.25) * 1797)
    return min(test, 1797 - test) >= 10


CONSTRUCTORS = {
    "AutoAttack": Target(
        kr.evaluation.AutoAttack,
        {
            "epsilon": number(omit=False),
            "norm": norm(l1=True),
            "version": choice(
                ("standard", "plus", "fast", "rand"), bad=("custom", None, 1)
            ),
            "seed": seed(none=False),
            **clip_args(),
        },
        clip_order,
        result=lambda attack, kwargs: len(attack.attacks(10)) in (2, 4, 6),
    ),
    "LangevinSampler": Target(
        kr.generation.LangevinSampler,
        {
            "classifier": model_arg(),
            "steps": integer(),
            "step_size": number(low_open=False),
            "noise_std": number(low_open=False),
            "momentum": number(0.0, 1.0, low_open=False, high_open=True),
            "energy": choice(("joint", "marginal"), bad=("free", None)),
            "initializer": choice(
                (None, kr.generation.UniformInitializer((8, 8, 1)), PCA),
                bad=("pca", 3),
            ),
            "clip": clip_pair(),
            "batch_size": integer(),
            "jit_compile": choice(("auto", True, False), bad=("yes", None, "xla")),
            "seed": seed(),
        },
        result=lambda sampler, kwargs: sampler.get_config()["steps"] >= 1,
    ),
    "UniformInitializer": Target(
        kr.generation.UniformInitializer,
        {
            "image_shape": choice(
                (None, (4, 4, 1), [2, 3]), bad=((4, 0), (4.0, 4), "4x4", 4)
            ),
            "clip": clip_pair(),
        },
    ),
    "GaussianInitializer": Target(
        kr.generation.GaussianInitializer,
        {"ridge": number(low_open=False), "clip": clip_pair()},
    ),
    "PCAInitializer": Target(
        kr.generation.PCAInitializer,
        {
            "retained_variance": number(0.0, 1.0),
            "sigma": number(low_open=False),
            "clip": clip_pair(),
        },
    ),
    "load_digits": Target(
        kr.datasets.load_digits,
        {
            "test_fraction": number(0.0, 1.0, high_open=True, span=(0.01, 0.99)),
            "seed": seed(),
        },
        lambda kwargs, bad: (
            set() if bad or digits_split_fits(kwargs) else {"test_fraction"}
        ),
        result=lambda splits, kwargs: len(splits[0][0]) + len(splits[1][0]) == 1797,
    ),
}


def digits_batch(dataset, kwargs):
    images, labels = (np.asarray(t) for t in next(iter(dataset)))
    assert images.shape[1:] == (8, 8, 1) and images.dtype == np.float32
    assert len(images) == len(labels) <= kwargs.get("batch_size", 128)
    assert float(np.min(images)) >= 0.0 and float(np.max(images)) <= 1.0


def attack_energy_report(**kwargs):
    return kr.energy.attack_energy_report(CLASSIFIER, **kwargs)


CONSTRUCTORS |= {
    "datasets.load": Target(
        kr.datasets.load,
        {
            "name": choice(("digits", "DIGITS"), bad=("mnist", None, 3), omit=False),
            "split": choice(("train", "test"), bad=("extra", "train[:10]", None)),
            "batch_size": integer(high=64),
            "augment": either(st.sampled_from([None, True, False]), omit=True),
            "shuffle": either(st.sampled_from([None, True, False]), omit=True),
            "seed": seed(),
            "drop_remainder": flag(),
        },
        result=digits_batch,
    ),
    "attack_energy_report": Target(
        attack_energy_report,
        {
            "x": inputs.images(B, range_known=False),
            "y": inputs.labels(B, 10),
            "attacks": choice(
                (None, {}, {"fgsm": FGSM}),
                bad=({"natural": FGSM}, {"a": "pgd"}, "pgd", [FGSM]),
            ),
            "batch_size": integer(),
            "seed": seed(none=False),
        },
        result=lambda result, kwargs: len(result.summary()["natural"]) == 3,
    ),
}


@pytest.mark.parametrize("target", sorted(CONSTRUCTORS))
@fuzz(max_examples=20)
@given(data=st.data())
def test_tool(target, data):
    run_case(data, target, CONSTRUCTORS[target])
