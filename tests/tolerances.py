"""Numerical tolerances of the theory tests, in one place, each with its reason."""

# Closed-form Gaussian averages vs adaptive quadrature (quad with epsabs 1e-13, epsrel 1e-11): both
# are accurate to ~1e-12; the margin covers the subtraction in (A1 - tau A0).
CLOSED_VS_QUAD = 1e-9
# Composite Gauss-Legendre (32 panels x 8 nodes on +-12 sd) and 96-point Gauss-Hermite vs quad, for
# variances in [0.1, 5] and means in [-6, 6]: both converge exponentially; observed errors ~1e-13.
QUADRATURE_VS_QUAD = 1e-8
# The sympy-derived right-hand side (integrated by quad) vs the fast closed form, absolute.
SYMBOLIC_VS_NUMERIC = 1e-9
# The wrong right-hand side (eta_w^2 term dropped) must differ from the symbolic one by more than this
# at the test states; the term is (eta_w^2/2) R <v delta^2> ~ 1e-4 there, far above SYMBOLIC_VS_NUMERIC.
WRONG_RHS_MIN_GAP = 1e-6
# Probability identities (S(0) = E, cluster swap) are exact up to rounding of Phi.
PROBABILITY = 1e-12


def report(name: str, got, expected) -> str:
    """A failure message with both the absolute and the relative error."""
    import numpy as np

    got, expected = np.asarray(got, float), np.asarray(expected, float)
    abs_err = float(np.max(np.abs(got - expected)))
    rel_err = abs_err / max(float(np.max(np.abs(expected))), 1e-300)
    return f"{name}: got {got}, expected {expected}, abs err {abs_err:.3e}, rel err {rel_err:.3e}"
# An attack on a linear model against its closed-form optimum (the l_1 fractional knapsack, the l_inf / l_2
# dual norms): within 1% relative, the acceptance criterion of the attacks (a weaker l_1 step misses by >3%).
ATTACK_OPTIMUM_RTOL = 0.01
