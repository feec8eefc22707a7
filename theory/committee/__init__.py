"""The two-layer soft committee machine on the Gaussian mixture (docs/committee.md).

- :mod:`theory.committee.ode`         parameters, order parameters, the large-N ODEs and the errors;
- :mod:`theory.committee.derivation`  the symbolic derivation (sympy).

The package mirrors :mod:`theory.committee.ode` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import ode as _ode

globals().update({k: v for k, v in vars(_ode).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_ode.__all__)
