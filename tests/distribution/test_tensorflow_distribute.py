"""`tf.distribute` on TensorFlow: two replicas train as one device does.

Three processes run at once (tests/distribution/worker.py): one with 2
logical CPU devices under `MirroredStrategy`, which also trains on one
device as the reference, and two local workers (one CPU replica each) of a
`MultiWorkerMirroredStrategy` cluster on localhost ports. AT and TRADES use a
deterministic attack (no random start) and a classifier without BatchNorm,
so two replicas and one device must give the same losses, metrics and
weights up to float32 rounding; also with AWP (whose ascent gradient must be
the global batch's) and the optimizer's weight EMA.
"""

import pytest

from tests.conftest import BACKEND
from tests.distribution import runner

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's"
)

METHODS = ("AT", "TRADES")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf_distribute")
    ports = ",".join(map(str, runner.free_ports(2)))
    mirrored, *workers = runner.run_workers(
        [
            ("mirrored", out / "mirrored.json"),
            ("multi_worker", out / "worker0.json", 0, ports),
            ("multi_worker", out / "worker1.json", 1, ports),
        ],
        runner.environment("tensorflow"),
    )
    return mirrored, workers


@pytest.mark.parametrize("method", [*METHODS, "AT_AWP_EMA"])
def test_mirrored_strategy_matches_one_device(reports, method):
    mirrored, _ = reports
    assert mirrored["replicas"] == 2
    runs = mirrored["methods"][method]
    runner.assert_same_training(runs["distributed"], runs["single"])


@pytest.mark.parametrize("method", METHODS)
def test_multi_worker_mirrored_strategy_matches_one_device(reports, method):
    mirrored, workers = reports
    single = mirrored["methods"][method]["single"]
    for worker in workers:
        assert worker["replicas"] == 2
        runner.assert_same_training(worker["methods"][method]["distributed"], single)


def test_nan_in_one_replica_skips_the_step_on_every_replica(reports):
    mirrored, workers = reports
    for report in [mirrored, *workers]:
        runner.assert_skipped_everywhere(report["nonfinite"])


def test_random_starts_train_under_mirrored_strategy(reports):
    mirrored, _ = reports
    history = mirrored["random_start_history"]
    assert history["skipped_batches"] == [0.0]
    assert all(abs(v[0]) < 1e3 for v in history.values())
