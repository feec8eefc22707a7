"""Commands of the structured-data dynamics (:mod:`theory.structured`).

- :mod:`simulate.structured.ode`  integrate the ODEs, its Monte Carlo and their comparison
  (``python -m simulate.structured``).

The package mirrors :mod:`simulate.structured.ode` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import ode as _ode

globals().update({k: v for k, v in vars(_ode).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_ode.__all__)
