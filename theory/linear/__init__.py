"""The linear classifier sign(w.xi - b) on the two-cluster Gaussian mixture.

- :mod:`theory.linear.params`      the parameters (glossary of symbols), budget laws, losses;
- :mod:`theory.linear.ode`         the large-N ODEs of (R, b), fixed points, Jacobian;
- :mod:`theory.linear.errors`      clean and adversarial errors E(R, b), S(R, b, eps_test);
- :mod:`theory.linear.derivation`  the symbolic derivation of the ODEs (sympy);
- :mod:`theory.linear.control`     optimal control of the training budget (Pontryagin).
"""
