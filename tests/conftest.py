"""Shared pytest configuration: hypothesis profiles and the location of the data sets.

Two tiers of real data:

* ``data_dir``: the small fixture committed under ``tests/data`` (a few hundred MNIST images, a hundred
  CIFAR-10 images; see its README). Every default test that needs real images uses it, so a fresh clone
  passes its tests with nothing beside it.
* ``full_data_dir``: the full data sets, for tests marked ``@pytest.mark.data``. Found at
  ``$ADVTRAIN_DATA_DIR`` if set, else at ``../shared/data`` relative to the repository root (where CI has
  them). When no such folder exists the marked tests are reported as skipped, with the reason.
"""

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
FIXTURE_DIR = ROOT / "tests" / "data"


def find_full_data() -> tuple[Path | None, str]:
    """(folder, '') when the full data sets are found, else (None, the reason)."""
    env = os.environ.get("ADVTRAIN_DATA_DIR", "").strip()
    if env:
        path = Path(env)
        return (path, "") if path.is_dir() else (None, f"ADVTRAIN_DATA_DIR={env} is not a folder")
    path = ROOT.parent / "shared" / "data"
    if path.is_dir():
        return path, ""
    return None, f"no full data sets: set ADVTRAIN_DATA_DIR or put them at {path}"


def pytest_collection_modifyitems(config, items):
    folder, reason = find_full_data()
    if folder is not None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The committed fixture of real images (tests/data), laid out like the full data folder."""
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def full_data_dir() -> Path:
    """The full data sets; only for tests marked ``data`` (skipped, with the reason, when absent)."""
    folder, reason = find_full_data()
    if folder is None:
        pytest.skip(reason)
    return folder
