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
    assert prov["rule"].startswith("vline:") and rule_for(p).name != prov["rule"]
    assert ref["names"] == state_names(p.K, p.D)
    y = np.asarray(ref["y"])
    assert y.shape == (len(ref["alpha"]), len(ref["names"])) and np.all(np.isfinite(y))
    assert ref["alpha"][0] == 0.0 and np.allclose(y[0], pack(p.initial_state()), rtol=0, atol=1e-15)
    # finer than the default where it matters: the reference's stated drift error (twice its change against
    # vline:(M+2)) below the default rule's stated error at every stored state after the start
    from simulate.committee import kernel_averages
    from theory.committee import drift_error, unpack

    for i in range(1, len(ref["alpha"])):
        _, err = drift_error(unpack(y[i], p.K, p.D), p, backend=kernel_averages)
        assert ref["drift_quad_error_abs"][i] < np.max(err), (ref["alpha"][i], ref["drift_quad_error_abs"][i], err.max())


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not met: the default (line:6:6) and the reference (vline:4, LSODA rtol 1e-6) "
                   "differ by up to 1.5e-2 (b[1] at alpha 25; 2.0e-3, 8.0e-3, 1.5e-2, 1.2e-2 at alpha 5, 10, 25, 50): "
                   "the default's drift error (up to 1.3e-3 absolute, the size of the drift at the antiparallel states) "
                   "amplified along the trajectory; the reference's stated drift error is 5e-6 to 4e-5 after the start; "
                   "a reference at rtol 1e-9 (337 right-hand sides at rtol 1e-6 took 2,149 CPU s) was not run")
def test_default_trajectory_within_1e4_of_the_reference():
    """Slow (the default run to alpha = 50, ~450 right-hand sides).  Every order parameter at the stored alphas of
    the default run (default rule, LSODA rtol 1e-6) within COMMITTEE_TRAJECTORY_VS_CONVERGED of the reference.
    The reference (bench/committee_reference.py) uses the transversal line rule vline:4 (lines along v, on which
    sigma is monotone) and integrates at the default's rtol 1e-6."""
    from simulate.committee import integrate

    ref = _reference()
    p = issue_case()
    default = integrate(p, ref["alpha"], error_alphas=[])
    gap = np.abs(default.y - np.asarray(ref["y"]))
    worst = np.unravel_index(np.argmax(gap), gap.shape)
    assert gap.max() < COMMITTEE_TRAJECTORY_VS_CONVERGED, (
        f"max |default - reference| {gap.max():.2e} at alpha {ref['alpha'][worst[0]]:g}, {default.names[worst[1]]}; "
        f"per alpha {np.round(gap.max(axis=1), 6).tolist()}")


REFERENCE_K2 = Path(__file__).resolve().parent / "data" / "committee_large_rate_k2_reference.json"


def test_k2_jump_trajectory_within_1e4_of_the_converged_run():
    """The large learning-rate case reduced to its first two units (v0 = (1, 1): sum |v| = 2, the integrand jumps;
    the units turn antiparallel, Q_12 -> -0.85) at the default settings (vline:6, LSODA rtol 1e-6; about 5 CPU s)
    within COMMITTEE_TRAJECTORY_VS_CONVERGED of the stored run with vline:10 at rtol 1e-9 (its stated drift error
    below 1e-12 at every stored alpha; bench/committee_reference.py --K 2).  With the former default line:32 the
    gap is 5.8e-4."""
    from simulate.committee import integrate
    from simulate.committee.mc import large_rate_case
    from theory.committee import rule_for

    ref = json.loads(REFERENCE_K2.read_text())
    p = large_rate_case(2)
    prov = ref["provenance"]
    assert CommitteeParams(**prov["params"]) == p and prov["rule"] == "vline:10" and prov["rtol"] <= 1e-9
    assert max(ref["drift_quad_error_abs"]) < 1e-12 and rule_for(p).name != prov["rule"]
    default = integrate(p, ref["alpha"], error_alphas=[])
    gap = np.abs(default.y - np.asarray(ref["y"]))
    assert gap.max() < COMMITTEE_TRAJECTORY_VS_CONVERGED, np.round(gap.max(axis=1), 8).tolist()


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
