"""Shared pytest configuration: hypothesis profiles and the location of the real data sets."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# 'ci' is derandomised so that a red CI run can be reproduced; 'dev' explores more examples.
settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data sets (../shared/data beside the checkout, or $ADVTRAIN_DATA_DIR)."""
    path = Path(os.environ.get("ADVTRAIN_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"data folder {path} is missing: set ADVTRAIN_DATA_DIR to the shared data sets")
    return path
