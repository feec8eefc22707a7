"""Parameter sweeps (docs/sweeps.md).

- :mod:`simulate.sweep.driver`   grid, store, backends, driver, regions, CLI (``python -m simulate.sweep``);
- :mod:`simulate.sweep.engines`  the engines a sweep evaluates (ODE, Monte Carlo).

The package mirrors :mod:`simulate.sweep.driver` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import driver as _driver

globals().update({k: v for k, v in vars(_driver).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_driver.__all__)
