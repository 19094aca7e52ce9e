"""`keras.distribution.DataParallel` on JAX: two devices train as one does.

Three processes run at once (tests/distribution/worker.py): one with 2
virtual CPU devices trains AT and TRADES on one device (the reference) and
with `DataParallel` over both; two more form a 2-process cluster
(`keras.distribution.initialize`, one CPU device each, Gloo collectives on
localhost) and train the same with `DataParallel` over the 2 processes' devices.
The classifier has no BatchNorm and the attacks no random start, so two
devices and one must give the same losses, metrics and weights up to float32
rounding. JAX draws random starts for the global batch, so AT with its own
uniform random start must match on 2 devices too.
"""

import pytest

from tests.conftest import BACKEND
from tests.distribution import runner
from tests.helpers import quick_compile_environment

pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="keras.distribution is JAX-only in Keras 3.15"
)

METHODS = ("AT", "TRADES")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("data_parallel")
    port = runner.free_ports(1)[0]
    env = runner.environment("jax", base=quick_compile_environment())
    single_host, *processes = runner.run_workers(
        [
            ("data_parallel", out / "data_parallel.json"),
            ("multi_process", out / "process0.json", 0, port),
            ("multi_process", out / "process1.json", 1, port),
        ],
        env,
    )
    return single_host, processes


@pytest.mark.parametrize("case", [*METHODS, "AT_random_start", "AT_AWP_EMA"])
def test_data_parallel_matches_one_device(reports, case):
    single_host, _ = reports
    assert single_host["replicas"] == 2
    runs = single_host["methods"][case]
    # The batch really is split over both devices; the weights are replicated.
    assert runs["data_sharding"] == [{"devices": 2, "replicated": False}]
    assert runs["weight_devices"] == 2
    runner.assert_same_training(runs["distributed"], runs["single"])


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_match_one_device(reports, method):
    single_host, processes = reports
    single = single_host["methods"][method]["single"]
    for process in processes:
        assert (process["replicas"], process["local_devices"]) == (2, 1)
        runner.assert_same_training(process["methods"][method]["distributed"], single)


def test_nan_in_one_device_half_skips_the_whole_step(reports):
    single_host, processes = reports
    for report in [single_host, *processes]:
        runner.assert_skipped_everywhere(report["nonfinite"])
