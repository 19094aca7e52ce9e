"""Fixtures of the fuzz tests."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_session():
    """Overrides tests/conftest.py's reset: fuzz cases build only throw-away
    objects, and a `keras.backend.clear_session()` per test (0.3 s) would
    take a large share of the suite's time budget."""
    yield
