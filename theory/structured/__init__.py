"""The linear classifier on structured data: any class means and covariances (docs/structured.md).

- :mod:`theory.structured.mixture`     the data law (means, covariances, their checks);
- :mod:`theory.structured.ode`         the state, the ODEs and the errors (re-exports the mixture);
- :mod:`theory.structured.derivation`  the symbolic per-component increments (sympy).

The package mirrors :mod:`theory.structured.ode` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import ode as _ode

globals().update({k: v for k, v in vars(_ode).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_ode.__all__)
