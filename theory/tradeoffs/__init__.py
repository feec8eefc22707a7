"""Static robustness trade-offs between perturbation types (docs/tradeoffs.md).

- :mod:`theory.tradeoffs.threats`  the registry of threats and the Pareto-frontier helpers they share;
- :mod:`theory.tradeoffs.lp`       l_inf versus l_1 (and l_2);
- :mod:`theory.tradeoffs.spatial`  l_inf versus rotation-translation of a ring image;
- :mod:`theory.tradeoffs.bridge`   l_inf and l_1 errors of the linear classifier's ODE state (R, b).
"""
