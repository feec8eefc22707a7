"""The two-layer soft committee machine on the Gaussian mixture (docs/committee.md).

- :mod:`theory.committee.ode`           the glossary and the large-N ODEs; gathers the modules below:
- :mod:`theory.committee.params`        parameters, mixture, order parameters and the packed state;
- :mod:`theory.committee.local_fields`  the fields given a cluster and the PGD attack on them;
- :mod:`theory.committee.quadrature`    the rules of the drift's Gaussian average;
- :mod:`theory.committee.closed_form`   the averages without the attack in closed form (rule "exact");
- :mod:`theory.committee.dynamics`      the drift and its quadrature error;
- :mod:`theory.committee.error_rates`   the errors E and S;
- :mod:`theory.committee.fixed_points`  fixed points and their stability;
- :mod:`theory.committee.derivation`    the symbolic derivation (sympy).

The package mirrors :mod:`theory.committee.ode` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import ode as _ode

globals().update({k: v for k, v in vars(_ode).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_ode.__all__)
