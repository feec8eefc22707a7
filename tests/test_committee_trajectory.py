"""The committee ODE at its default settings against a stored reference run with a finer drift rule
(tests/data/committee_large_rate_reference.json, written by bench/committee_reference.py; its provenance names the
rule, the solver tolerances, the right-hand sides, the CPU seconds and the git SHA), and without the attack, where
the drift is exact, against a run at rtol 1e-9."""

import json
from pathlib import Path

import numpy as np
import pytest

from theory.committee import CommitteeParams

from .tolerances import COMMITTEE_TRAJECTORY_VS_CONVERGED

REFERENCE = Path(__file__).resolve().parent / "data" / "committee_large_rate_reference.json"


def issue_case() -> CommitteeParams:
    """xor, K = 4, rho 4, variance 0.5, eta_w 0.5, eta_b 0.2, FGSM eps 0.5, v0 = (1, 1, -1, -1): sum |v| = 4, so
    sigma - tau changes sign inside the clusters and the attack direction flips (the line rule's case)."""
    from simulate.committee.mc import large_rate_case

    return large_rate_case()


def _reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_reference_is_of_the_case():
    """The stored reference was computed for the parameters of large_rate_case and a rule finer than the default,
    and holds the packed state at each stored alpha (the names of theory.committee.state_names)."""
    from theory.committee import pack, rule_for, state_names

    ref = _reference()
    p = issue_case()
    prov = ref["provenance"]
    assert CommitteeParams(**prov["params"]) == p
    default = rule_for(p).name
    assert prov["rule"].startswith("line:") and int(prov["rule"].split(":")[1]) > int(default.split(":")[1])
    assert ref["names"] == state_names(p.K, p.D)
    y = np.asarray(ref["y"])
    assert y.shape == (len(ref["alpha"]), len(ref["names"])) and np.all(np.isfinite(y))
    assert ref["alpha"][0] == 0.0 and np.allclose(y[0], pack(p.initial_state()), rtol=0, atol=1e-15)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not met: the default (line:6:6) and the reference (line:12, 12 panels) differ by "
                   "up to 1.2e-2 (b[1] at alpha 25; 2e-3, 9e-3, 1.2e-2, 4e-3 at alpha 5, 10, 25, 50), the drift's "
                   "quadrature error (estimated 2e-3 absolute for line:6, 8e-4 to 2e-3 for line:12) amplified along "
                   "the trajectory; a reference at rtol 1e-7 or 1e-9 did not finish (> 1 h, the line rule's drift is "
                   "only piecewise smooth in the state)")
def test_default_trajectory_within_1e4_of_the_reference():
    """Slow (the default run to alpha = 50, ~450 right-hand sides).  Every order parameter at the stored alphas of
    the default run (default rule, LSODA rtol 1e-6) within COMMITTEE_TRAJECTORY_VS_CONVERGED of the reference.
    The reference (bench/committee_reference.py) has twice the outer nodes per dimension and twice the inner
    panels of the default; it integrates at the default's rtol 1e-6, since tighter tolerances did not finish."""
    from simulate.committee import integrate

    ref = _reference()
    p = issue_case()
    default = integrate(p, ref["alpha"], error_alphas=[])
    gap = np.abs(default.y - np.asarray(ref["y"]))
    worst = np.unravel_index(np.argmax(gap), gap.shape)
    assert gap.max() < COMMITTEE_TRAJECTORY_VS_CONVERGED, (
        f"max |default - reference| {gap.max():.2e} at alpha {ref['alpha'][worst[0]]:g}, {default.names[worst[1]]}; "
        f"per alpha {np.round(gap.max(axis=1), 6).tolist()}")


def test_standard_xor_trajectory_within_1e4_of_the_converged_run():
    """Without the attack the drift is exact (the closed form, tests/test_committee_closed_form.py): the xor K = 4
    table case at the default settings (LSODA rtol 1e-6) within COMMITTEE_TRAJECTORY_VS_CONVERGED of a run at rtol
    1e-9, atol 1e-12 with the same converged rule, at alpha 10, 50, 100, 200 (measured: 5e-8).  The former default
    rule, the Gauss-Hermite product gh:12 (drift error 3e-5), misses the same bound by alpha 10: the test tells rules apart."""
    from simulate.committee import integrate
    from simulate.committee.mc import table_cases

    p = table_cases()["xor-K4-standard"]
    alphas = [0.0, 10.0, 50.0, 100.0, 200.0]
    default = integrate(p, alphas, error_alphas=[])
    assert default.solver["rule"] == "exact"
    converged = integrate(p, alphas, error_alphas=[], rtol=1e-9, atol=1e-12)
    gap = np.abs(default.y - converged.y).max()
    assert gap < COMMITTEE_TRAJECTORY_VS_CONVERGED, f"max |default - converged| {gap:.2e}"
    coarse = integrate(p, alphas[:3], error_alphas=[], rule="gh:12")  # to alpha 50: 2.5e-4, 8.8e-4 off
    assert np.abs(coarse.y - converged.y[:3]).max() > COMMITTEE_TRAJECTORY_VS_CONVERGED
