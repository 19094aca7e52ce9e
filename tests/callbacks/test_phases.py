"""The phase rule on synthetic energy-gap curves with known phases."""

import numpy as np
import pytest

import keras_robust as kr


def curve(
    phase1=10, phase2=60, phase3=20, plateau=-0.2, collapse=-0.7, noise=0.01, seed=0
):
    rng = np.random.default_rng(seed)
    first = np.linspace(0.0, plateau, phase1)
    second = np.full(phase2, plateau)
    third = np.linspace(plateau, collapse, phase3 + 1)[1:]
    values = np.concatenate([first, second, third])
    return values + rng.normal(scale=noise, size=len(values)), phase1, phase1 + phase2


@pytest.mark.parametrize("seed", range(5))
def test_three_phases_found_near_their_true_boundaries(seed):
    gaps, plateau_start, collapse_start = curve(seed=seed)
    phases = kr.callbacks.detect_phases(gaps)
    assert phases[0] == 1
    first_2 = phases.index(2)
    first_3 = phases.index(3)
    # Phase 2 is reported once a whole window is flat, phase 3 after patience.
    assert plateau_start <= first_2 <= plateau_start + 6
    assert collapse_start <= first_3 <= collapse_start + 8
    assert set(phases[first_2:first_3]) == {2}
    assert set(phases[first_3:]) == {3}


def test_trades_like_flat_curve_never_reaches_phase_3():
    rng = np.random.default_rng(1)
    gaps = -0.01 + rng.normal(scale=0.005, size=100)
    phases = kr.callbacks.detect_phases(gaps)
    assert 3 not in phases
    assert phases[-1] == 2


def test_phase_start_epochs_are_recorded():
    gaps, plateau_start, collapse_start = curve(noise=0.0)
    rule = kr.callbacks.PhaseRule()
    for gap in gaps:
        rule.update(gap)
    assert plateau_start - 3 <= rule.phase_starts[2] <= plateau_start + 1
    assert collapse_start <= rule.phase_starts[3] <= collapse_start + 8
    assert rule.plateau_level == pytest.approx(-0.2, abs=0.02)


def test_thresholds_are_tunable():
    gaps, _, _ = curve(plateau=-0.2, collapse=-0.3, phase3=30)
    assert 3 not in kr.callbacks.detect_phases(gaps, divergence=0.2)
    assert 3 in kr.callbacks.detect_phases(gaps, divergence=0.05)


def test_short_and_empty_histories():
    assert kr.callbacks.detect_phases([]) == []
    assert kr.callbacks.detect_phases([0.0, -0.1]) == [1, 1]


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 1}, {"patience": 0}, {"plateau_slope": 0.0}, {"divergence": -1.0}],
)
def test_bad_rule_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        kr.callbacks.PhaseRule(**kwargs)
