"""The committee machine's drift quadrature: the default rule lies within its stated error of an independent,
much finer rule; the compiled right-hand side equals theory's numpy one; the command works without numba."""

import math

import numpy as np
import pytest
from scipy import stats

from theory.committee import CommitteeParams, State, drift, drift_error, drift_rule, pack, rule_for

from .tolerances import COMMITTEE_KERNEL_VS_NUMPY, COMMITTEE_QUAD_FAMILY_LEVEL


def _kernel():
    try:
        from simulate.committee import kernel_averages

        import numba  # noqa: F401
    except ImportError:
        return None
    return kernel_averages


def random_state(K: int, D: int, rng, v_sum: float) -> State:
    """Unit vectors w_k in R^(K+D+3) with B_d the first D coordinates (R = W[:, :D], Q = W W^T), thresholds in
    [-0.8, 0.8], second-layer weights of random signs with sum |v_k| = v_sum."""
    W = rng.standard_normal((K, K + D + 3)) + 0.6 * rng.standard_normal(K + D + 3)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    v = rng.uniform(0.5, 1.0, K) * rng.choice([-1.0, 1.0], K)
    return State(W @ W.T, W[:, :D].copy(), rng.uniform(-0.8, 0.8, K), v_sum * v / np.abs(v).sum())


# (K, preset, training, sums of |v_k| of the random states, reference rule): the references are the same kind of
# rule with 4x the Gauss-Hermite nodes per dimension (beyond the 1.5x rule of the default's estimate), or the randomised rule with 8x the points per block and 2x
# the blocks of the default randomised rule.  eta_v > 0 (v learns) or sum |v_k| > 1: sigma - tau can vanish, the
# attack direction flips and the integrand jumps; the default rule is then vline at K = 2 and the line rule at K = 3, 4
# (theory.committee.may_jump, vline_nodes, line_nodes), checked against the unbiased randomised reference.
CASES = [
    (2, "talk", dict(eps=1.0), (1.0, 0.6), "gh:1024"),
    (2, "xor", dict(eps=0.5, pgd_steps=3, pgd_step=0.5, eta_v=0.1), (1.0, 2.0), "rqmc:13:16"),
    (2, "xor", dict(eps=0.5, eta_v=0.1), (1.0, 2.0), "rqmc:13:16"),
    (3, "xor", dict(eps=0.5, eta_v=0.1), (1.0, 2.0), "rqmc:13:16"),
    (4, "xor", dict(eps=0.3), (1.0, 0.8), "rqmc:13:16"),
    (4, "xor", dict(eps=0.5, eta_v=0.1), (2.0,), "rqmc:13:16"),
    # without the attack the default is the closed form: tests/test_committee_closed_form.py
]


@pytest.mark.parametrize("K, preset, training, v_sums, reference", CASES)
def test_default_rule_within_its_stated_error(K, preset, training, v_sums, reference):
    """Random states per case; |default - reference| <= the default's stated error combined with the reference's:
    a deterministic default (Gauss-Hermite, line rule) states a bound (twice the change against a finer rule of the
    same kind), a randomised one a standard error; a randomised reference adds q_ref se_ref, a randomised default
    q sqrt(se^2 + se_ref^2) instead, q from Student's t (blocks - 1 degrees of freedom) Sidak-corrected over every
    entry compared at the family-wise level COMMITTEE_QUAD_FAMILY_LEVEL.  Where the default is randomised, the former
    product rule (10 Gauss-Hermite nodes per dimension) fails the same bound at least once: the test tells rules
    apart."""
    rng = np.random.default_rng(100 + K)
    p = CommitteeParams(preset=preset, K=K, eta_w=0.3, eta_b=0.3, **training)
    rule = rule_for(p)
    ref_rule = drift_rule(K, reference, p.eps)
    states = [random_state(K, p.D, rng, s) for s in v_sums]
    m = len(pack(states[0])) * len(states)

    def q(blocks):
        return stats.t.ppf(1 - (1 - (1 - COMMITTEE_QUAD_FAMILY_LEVEL) ** (1 / m)) / 2, blocks - 1)

    coarse_fails = False
    fast = _kernel()  # the references' 10^5-10^6 nodes through the compiled averages (equal to numpy: below)
    for st in states:
        y, err = drift_error(st, p, backend=fast)
        assert np.all(np.isfinite(err)) and np.max(err) > 0
        if ref_rule.blocks > 1:
            ref, ref_se = drift_error(st, p, reference, backend=fast)
        else:
            ref, ref_se = pack(drift(st, p, reference, backend=fast)), 0.0
        if rule.blocks > 1:
            bound = q(rule.blocks) * np.sqrt(err**2 + ref_se**2)
            coarse = pack(drift(st, p, 10))
            coarse_fails |= bool(np.any(np.abs(coarse - ref) > bound))
        else:
            bound = err + (q(ref_rule.blocks) * ref_se if ref_rule.blocks > 1 else 0.0) + 1e-12
        gap = np.abs(y - ref)
        assert np.all(gap <= bound), (f"K={K} {rule.name} vs {reference}: worst |gap| {gap.max():.3g}, bound there "
                                      f"{bound[np.argmax(gap / bound)]:.3g}, max |drift| {np.abs(ref).max():.3g}")
    if rule.blocks > 1:
        assert coarse_fails, "the former 10^K product rule passed the bound: the test does not tell rules apart"


def test_product_rule_max_error_without_attack():
    """K = 3 without the attack: the product rule gh:24 against the closed form on random states, max over the
    entries (what quad_err and quad_abs report): max |gap| <= max of the stated errors (twice the change against
    gh:36)."""
    rng = np.random.default_rng(103)
    p = CommitteeParams(preset="xor", K=3, eta_w=0.3, eta_b=0.3, eps=0.0)
    for s in (1.0, 0.6):
        st = random_state(3, p.D, rng, s)
        y, err = drift_error(st, p, "gh:24", backend=_kernel())
        ref = pack(drift(st, p, "exact"))
        assert np.max(np.abs(y - ref)) <= np.max(err), (np.max(np.abs(y - ref)), np.max(err))


def test_stated_error_of_the_randomised_rule_is_its_spread():
    """For an rqmc rule the stated error is the standard error of its blocks (std/sqrt(r)), computed by hand."""
    p = CommitteeParams(preset="xor", K=3, eps=0.5)
    st = p.initial_state()
    y, se = drift_error(st, p, "rqmc:6:4")
    rule = drift_rule(3, "rqmc:6:4")
    per = len(rule.nodes) // 4
    blocks = []
    import theory.committee as tc

    for j in range(4):
        sub = tc.Rule("sub", rule.nodes[j * per:(j + 1) * per], np.full(per, 1.0 / per), 1)
        A = tc.averages(st, p, sub)
        blocks.append(pack(tc.drift_from_averages(st, p, *(a[0] for a in A))))
    blocks = np.array(blocks)
    assert np.max(np.abs(y - blocks.mean(0))) < 1e-15
    assert np.max(np.abs(se - blocks.std(0, ddof=1) / 2)) < 1e-15


CONFIGS = [
    ("talk", 1, dict(eps=1.0), None),
    ("talk", 2, dict(eps=0.0), None),
    ("talk", 2, dict(eps=1.0, pgd_steps=3, pgd_step=0.5), "gh:20"),
    ("xor", 3, dict(eps=0.5), "rqmc:6:3"),
    ("xor", 4, dict(eps=0.3), "gh:5"),
    ("xor", 4, dict(eps=0.0), "qmc:8"),
    ("xor", 5, dict(eps=0.5, pgd_steps=2, pgd_step=0.7), "rqmc:6:2"),
    ("xor", 4, dict(eps=0.5), "line:4"),
    ("talk", 2, dict(eps=1.0, pgd_steps=3, pgd_step=0.5), "line:8"),
]


@pytest.mark.parametrize("preset, K, attack, rule", CONFIGS)
def test_kernel_equals_numpy(preset, K, attack, rule):
    """The compiled averages (simulate.kernels.committee_drift) against theory.committee.averages, at a random state
    with sum |v| = 2, for the drift and the deliberately wrong variant without the attack in the average."""
    pytest.importorskip("numba")
    from simulate.committee import kernel_averages

    rng = np.random.default_rng(K)
    p = CommitteeParams(preset=preset, K=K, eta_v=0.2, **attack)
    st = random_state(K, p.D, rng, 2.0)
    for variant in (dict(), dict(attack_in_average=False)):
        a = pack(drift(st, p, rule, **variant))
        b = pack(drift(st, p, rule, backend=kernel_averages, **variant))
        assert np.max(np.abs(a - b)) < COMMITTEE_KERNEL_VS_NUMPY * max(1.0, np.abs(a).max()), np.abs(a - b).max()
        ya, ea = drift_error(st, p, rule, **variant)
        yb, eb = drift_error(st, p, rule, backend=kernel_averages, **variant)
        assert np.max(np.abs(ea - eb)) < COMMITTEE_KERNEL_VS_NUMPY


@pytest.mark.parametrize("K, attack", [(2, dict(eps=1.0)), (4, dict(eps=0.5)), (4, dict(eps=0.5, pgd_steps=3, pgd_step=0.5))])
def test_kernel_equals_numpy_with_known_sign(K, attack):
    """Where sum |v_k| <= 1 the kernel skips erf at the clean fields (sign(sigma - tau) = -tau): the same averages as
    theory's numpy, which always computes sigma, at random states with sum |v| = 1 and 0.6."""
    pytest.importorskip("numba")
    from simulate.committee import kernel_averages

    rng = np.random.default_rng(10 + K)
    p = CommitteeParams(preset="xor", K=K, **attack)
    for v_sum in (1.0, 0.6):
        st = random_state(K, p.D, rng, v_sum)
        a = pack(drift(st, p, "rqmc:6:2"))
        b = pack(drift(st, p, "rqmc:6:2", backend=kernel_averages))
        assert np.max(np.abs(a - b)) < COMMITTEE_KERNEL_VS_NUMPY * max(1.0, np.abs(a).max()), np.abs(a - b).max()


def test_command_without_numba(monkeypatch, capsys):
    """With numba unavailable the command falls back to numpy, says so, and prints the same table."""
    from simulate.committee import ode as sc

    argv = ["--preset", "talk", "--K", "2", "--alpha-max", "4", "--alpha-step", "2", "--no-errors"]
    assert sc.main(argv) == 0
    fast = capsys.readouterr().out
    monkeypatch.setattr(sc, "_numba_available", lambda: False)
    assert sc.main(argv) == 0
    slow = capsys.readouterr().out
    assert "numba is not installed" in slow and "numpy backend" in slow
    def rows(text):
        return np.array([[float(x) for x in line.split()] for line in text.splitlines() if line.strip()[:1].isdigit()])

    assert rows(fast).shape == rows(slow).shape and np.max(np.abs(rows(fast) - rows(slow))) < 1e-5
    with pytest.raises(SystemExit):
        sc.main(argv + ["--backend", "numba"])


def test_quad_tol_refines_the_rule():
    """--quad-tol picks a finer rule until the estimated error at the start is below it."""
    from simulate.committee import choose_rule

    p = CommitteeParams(preset="talk", K=2, eps=1.0)
    name, rel = choose_rule(p, 1e-3, "gh:6")
    assert rel <= 1e-3 and int(name.split(":")[1]) > 6
    _, rel6 = choose_rule(p, 0.9, "gh:6")
    assert rel6 > 1e-3 and math.isfinite(rel6)
