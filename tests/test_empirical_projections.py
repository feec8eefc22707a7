"""Property tests of the exact projections onto (l_p ball) ∩ (pixel box): feasible, idempotent, and the
nearest feasible point, against a slow reference on small vectors.

Reference: Dykstra's alternating projections between the ball and the box (converges to the projection
onto the intersection of two convex sets), with the l_1-ball projection done by the classic sorting
algorithm (Duchi et al. 2008) in numpy float64: a different algorithm from the code under test.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from empirical.threats import L1Ball, L2Ball, LinfBall, project_l1, project_l1_box, project_l2_box  # noqa: E402

TOL = 1e-6  # float64 throughout; the reference runs Dykstra to a fixed point of changes below 1e-13


def _l1_ball_sort(v, eps):
    """Projection onto {|r|_1 <= eps} by sorting (Duchi et al. 2008)."""
    a = np.abs(v)
    if a.sum() <= eps:
        return v.copy()
    u = np.sort(a)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, len(u) + 1)
    rho = np.nonzero(u * k > css - eps)[0][-1]
    lam = (css[rho] - eps) / (rho + 1.0)
    return np.sign(v) * np.maximum(a - lam, 0)


def _l2_ball(v, eps):
    n = np.linalg.norm(v)
    return v if n <= eps else v * eps / n


def _dykstra(v, ball, lo, hi, iters=20000):
    x, p, q = v.copy(), np.zeros_like(v), np.zeros_like(v)
    for _ in range(iters):
        y = np.clip(x + p, lo, hi)
        p = x + p - y
        x_new = ball(y + q)
        q = y + q - x_new
        if np.max(np.abs(x_new - x)) < 1e-13 and np.max(np.abs(y - x_new)) < 1e-13:
            return x_new
        x = x_new
    return x


vec = st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=8)
unit = st.floats(0, 1)
radius = st.floats(0.01, 4)


def _case(v, xs, eps):
    v = np.array(v, dtype=np.float64)
    x = np.resize(np.array(xs, dtype=np.float64), v.shape)
    return v, x, eps


def _check(proj, ball, v, x, eps, norm):
    vt, xt = torch.tensor(v)[None], torch.tensor(x)[None]
    lo, hi = -xt, 1 - xt
    r = proj(vt, eps, lo, hi)
    # feasible
    assert float(norm(r)) <= eps * (1 + 1e-9) + 1e-12
    assert bool(((r >= lo - 1e-12) & (r <= hi + 1e-12)).all())
    # idempotent
    assert torch.allclose(proj(r, eps, lo, hi), r, atol=1e-9)
    # nearest: agrees with the reference and is no farther from v
    ref = _dykstra(v, lambda z: ball(z, eps), -x, 1 - x)
    got = r[0].numpy()
    assert np.linalg.norm(got - v) <= np.linalg.norm(ref - v) + TOL
    assert np.max(np.abs(got - ref)) <= 1e-5, (got, ref)
    # optimality (variational inequality): (v - r) . (c - r) <= 0 for feasible c; c = corners and 0.
    for c in (np.zeros_like(v), ref):
        assert float(np.dot(v - got, c - got)) <= 1e-7


@given(vec, st.lists(unit, min_size=1, max_size=8), radius)
@example([2.0, -2.0, 0.5], [1.0, 0.0, 0.5], 0.7)   # coordinates at the box faces pushing outwards
@example([0.0, 0.0], [0.3, 0.9], 1.0)               # zero perturbation
@example([0.1, 0.1], [0.5, 0.5], 4.0)               # already inside
@example([3.0, 3.0, 3.0], [0.0, 0.0, 0.0], 0.01)    # ties
def test_l1_box_projection(v, xs, eps):
    v, x, eps = _case(v, xs, eps)
    _check(project_l1_box, _l1_ball_sort, v, x, eps, lambda r: r.abs().sum())


@given(vec, st.lists(unit, min_size=1, max_size=8), radius)
@example([2.0, -2.0, 0.5], [1.0, 0.0, 0.5], 0.7)
@example([0.0, 0.0], [0.3, 0.9], 1.0)
def test_l2_box_projection(v, xs, eps):
    v, x, eps = _case(v, xs, eps)
    _check(project_l2_box, _l2_ball, v, x, eps, lambda r: r.norm())


@given(vec, radius)
@example([1.0, 1.0, 1.0], 0.5)
def test_l1_ball_projection_without_box_matches_sorting(v, eps):
    v = np.array(v)
    got = project_l1(torch.tensor(v)[None], eps)[0].numpy()
    assert np.max(np.abs(got - _l1_ball_sort(v, eps))) <= 1e-9


@given(vec, st.lists(unit, min_size=1, max_size=8), radius)
def test_threat_project_is_feasible_and_idempotent_for_each_ball(v, xs, eps):
    v, x, eps = _case(v, xs, eps)
    xt = torch.tensor(x).reshape(1, 1, 1, -1)
    xa = xt + torch.tensor(v).reshape(xt.shape)
    for threat in (LinfBall(eps=eps), L2Ball(eps=eps), L1Ball(eps=eps)):
        p = threat.project(xa, xt)
        assert bool(threat.contains(p, xt).all())
        assert torch.allclose(threat.project(p, xt), p, atol=1e-9)
    # l_inf: the projection is the coordinatewise clip (exact)
    expect = np.clip(np.clip(v, -eps, eps), -x, 1 - x)
    assert np.allclose((LinfBall(eps=eps).project(xa, xt) - xt).reshape(-1).numpy(), expect, atol=1e-12)


def test_random_init_is_inside_each_set():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 6, 6, generator=g, dtype=torch.float64)
    for threat in (LinfBall(eps=0.3), L2Ball(eps=2.0), L1Ball(eps=3.0)):
        xa = threat.random_init(x, g)
        assert bool(threat.contains(xa, x).all())
        assert float((xa - x).abs().max()) > 0


@pytest.mark.parametrize("scale", [0.05, 0.3, 2.0])
def test_l2_box_projection_on_mnist_like_images(scale):
    """784 coordinates, 70% of the pixels at 0 and some at 1 (where the box binds at once): the active-set
    iteration against Dykstra's alternating projections, same tolerances as above."""
    rng = np.random.default_rng(int(scale * 100))
    for _ in range(3):
        x = np.where(rng.random(784) < 0.7, 0.0, rng.random(784))
        x[rng.random(784) < 0.1] = 1.0
        v = rng.normal(0, scale, 784)
        _check(project_l2_box, _l2_ball, v, x, 2.0, lambda r: r.norm())


@given(vec, st.lists(unit, min_size=1, max_size=8), radius)
def test_linf_project_shortcut_equals_the_generic_ball_and_box_route(v, xs, eps):
    """LinfBall.project clips once to [max(0, x - eps), min(1, x + eps)]; the generic route projects the
    perturbation onto the ball, then onto the box faces -x <= r <= 1 - x."""
    from empirical.threats import LpThreat

    v, x, _ = _case(v, xs, eps)
    t = LinfBall(eps=eps)
    xt, xa = torch.tensor(x)[None], torch.tensor(x + v)[None]
    assert torch.equal(t.project(xa, xt), LpThreat.project(t, xa, xt))
