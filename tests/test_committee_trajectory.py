"""The committee ODE at its default settings against a converged reference run (finer rule, rtol 1e-9)."""

import numpy as np
import pytest

from theory.committee import CommitteeParams

from .tolerances import COMMITTEE_TRAJECTORY_VS_CONVERGED


def issue_case() -> CommitteeParams:
    """xor, K = 4, rho 4, variance 0.5, eta_w 0.5, eta_b 0.2, FGSM eps 0.5, v0 = (1, 1, -1, -1): sum |v| = 4, so
    sigma - tau changes sign inside the clusters and the attack direction flips (the line rule's case)."""
    return CommitteeParams(preset="xor", K=4, rho=4, v1=0.5, v2=0.5, eta_w=0.5, eta_b=0.2, eps=0.5,
                           R0=[[0.3, 0.05], [-0.25, 0.1], [0.05, 0.3], [0.1, -0.25]],
                           Q0=[[1 if i == j else 0.05 for j in range(4)] for i in range(4)], b0=[0.5] * 4,
                           v0=[1, 1, -1, -1])


@pytest.mark.slow
def test_default_trajectory_within_1e4_of_the_converged_one():
    """Slow (minutes: the reference has 4x the lines of the default rule and rtol 1e-9).  Every order parameter at
    alpha = 10, 25, 50 of the default run (line:6, LSODA rtol 1e-6) within COMMITTEE_TRAJECTORY_VS_CONVERGED of a
    run with line:12 and rtol 1e-9, atol 1e-11."""
    from simulate.committee import integrate

    p = issue_case()
    al = [0.0, 10.0, 25.0, 50.0]
    default = integrate(p, al, error_alphas=[])
    ref = integrate(p, al, error_alphas=[], rule="line:12", rtol=1e-9, atol=1e-11)
    gap = np.abs(default.y - ref.y)
    assert gap.max() < COMMITTEE_TRAJECTORY_VS_CONVERGED, (gap.max(), default.names[int(np.argmax(gap.max(0)))])
