"""Commands of the soft committee machine (:mod:`theory.committee`).

- :mod:`simulate.committee.ode`  integrate the ODEs (``python -m simulate.committee``);
- :mod:`simulate.committee.mc`   its Monte Carlo (``python -m simulate.mc_committee``).

The package mirrors :mod:`simulate.committee.ode` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import ode as _ode

globals().update({k: v for k, v in vars(_ode).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_ode.__all__)
