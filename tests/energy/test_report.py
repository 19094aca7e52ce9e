"""attack_energy_report and plot_energy_histograms."""

import json

import numpy as np
import pytest
from scipy.special import logsumexp

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


def test_report_matches_direct_energies(tmp_path, digits):
    _, (xt, yt) = digits
    xt, yt = xt[:100], yt[:100]
    net = tiny_cnn()
    attacks = {
        "PGD-5": kr.attacks.PGD(0.2, steps=5, seed=0),
        "PGD-T": kr.attacks.PGD(0.2, steps=5, targeted=True, seed=0),
    }
    report = kr.energy.attack_energy_report(net, xt, yt, attacks=attacks, batch_size=32)
    logits = to_numpy(net(xt))
    natural = report.energies["natural"]
    np.testing.assert_allclose(natural["marginal"], -logsumexp(logits, -1), rtol=1e-5)
    np.testing.assert_allclose(natural["joint"], -logits[np.arange(100), yt], rtol=1e-5)
    summary = report.summary()
    assert set(summary) == {"natural", "PGD-5", "PGD-T"}
    assert summary["PGD-5"]["accuracy"] <= summary["natural"]["accuracy"]
    assert summary["natural"]["marginal"]["q50"] == pytest.approx(
        np.median(natural["marginal"]), rel=1e-5
    )
    assert "PGD-5" in str(report)
    assert json.loads(report.to_json(tmp_path / "r.json")) == json.loads(
        (tmp_path / "r.json").read_text()
    )
    figure = kr.energy.plot_energy_histograms(report, tmp_path / "h.png")
    assert len(figure.axes) == 2
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_report_errors(digits):
    _, (xt, yt) = digits
    net = tiny_cnn()
    with pytest.raises(TypeError, match="attacks"):
        kr.energy.attack_energy_report(net, xt[:4], yt[:4], attacks={"x": "pgd"})
    with pytest.raises(ValueError, match="natural"):
        kr.energy.attack_energy_report(
            net, xt[:4], yt[:4], attacks={"natural": kr.attacks.PGD(0.1)}
        )
    report = kr.energy.attack_energy_report(net, xt[:4], yt[:4])
    with pytest.raises(ValueError, match="kind"):
        kr.energy.plot_energy_histograms(report, kind="free")
