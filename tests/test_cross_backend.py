"""TensorFlow and JAX craft the same x* from the same weights and start."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.cross_backend
@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="runs both backends itself; once per suite"
)
def test_tensorflow_and_jax_craft_the_same_adversarial_examples(tmp_path):
    outputs = {}
    for backend in ("tensorflow", "jax"):
        path = tmp_path / f"{backend}.npz"
        environment = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
        subprocess.run(
            [sys.executable, "-m", "tests.cross_backend_attack", str(path)],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
        outputs[backend] = np.load(path)
    for key in outputs["tensorflow"].files:
        np.testing.assert_allclose(
            outputs["tensorflow"][key], outputs["jax"][key], atol=1e-4, err_msg=key
        )
