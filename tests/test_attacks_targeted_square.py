"""APGD-T and Square against the exact robust set of a linear 10-class model.

For logits z = W x + b and a point x far enough inside the box (x in [0.35, 0.65]^d, eps <= 0.35) that the box does not bind, x is robust in the
l_p ball of radius eps iff for every class t != y: (w_y - w_t).x + b_y - b_t > eps |w_y - w_t|_q (q the dual
norm of p), because the worst perturbation for the pair (y, t) is the dual-norm maximiser. That closed form is
independent of the attacks. APGD-T (whose targets are the top clean logits) must break every non-robust point
and none of the robust ones; Square (gradient-free, l_inf) must break every point whose worst margin is
clearly negative (l_2 and l_1: tests/test_attacks_fab_square.py, on a model with spatially smooth weights: on
these i.i.d. 4 x 4 weights the paper's l_2 windows of side >= 3 cover most of the image). A deliberately weak variant (APGD-T with 2 steps of size eps / 10) must miss some points.
"""

import math

import pytest

torch = pytest.importorskip("torch")

from empirical.attacks import APGDT, Square  # noqa: E402
from empirical.threats import get_threat  # noqa: E402

torch.set_num_threads(1)

K, SIDE = 10, 4
D = SIDE * SIDE
DUAL = {"linf": 1.0, "l2": 2.0, "l1": math.inf}


def _setup(norm, n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(K, D, generator=g, dtype=torch.float64)
    x = 0.35 + 0.3 * torch.rand(n, 1, SIDE, SIDE, generator=g, dtype=torch.float64)
    b = -(W @ torch.full((D,), 0.5, dtype=torch.float64))  # centred logits: classes compete
    z0 = x.reshape(n, -1) @ W.T + b
    y = z0.argmax(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(D, K)).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(W)
        model[1].bias.copy_(b)
    gap = (z0.gather(1, y[:, None]) - z0)  # [n, K] z_y - z_t >= 0
    dual = torch.linalg.vector_norm(W[y][:, None, :] - W[None, :, :], ord=DUAL[norm], dim=2)  # [n, K]
    other = torch.arange(K)[None] != y[:, None]
    # The budget: the median over points of the smallest breaking radius, so about half the points are robust.
    radius = torch.where(other, gap / dual.clamp_min(1e-12), torch.full_like(gap, math.inf)).min(1).values
    eps = float(radius.median())
    # The optimal perturbation moves a coordinate by at most eps (all norms): it stays in the box if eps <= 0.35.
    assert eps <= 0.35, eps
    worst = torch.where(other, gap - eps * dual, torch.full_like(gap, math.inf))
    worst_margin = worst.min(1).values  # < 0: not robust
    return model, x, y, worst_margin, eps


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_apgd_t_matches_the_exact_robust_set(norm):
    model, x, y, worst, eps = _setup(norm)
    threat = get_threat(norm, eps=eps)
    x_adv = APGDT(threat, steps=100, n_target_classes=9)(model, x, y, generator=torch.Generator().manual_seed(1))
    assert bool(threat.contains(x_adv, x).all())
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    exact = worst > 0
    clear = worst.abs() > 1e-6  # points on the boundary to rounding are left out
    assert 0.2 < float(exact.double().mean()) < 0.8, "the fixture should mix robust and non-robust points"
    wrong = (robust != exact) & clear
    assert int(wrong.sum()) == 0, f"{norm}: APGD-T disagrees with the exact robust set on {int(wrong.sum())} points"


def test_weak_apgd_t_misses_points():
    model, x, y, worst, eps = _setup("linf")
    threat = get_threat("linf", eps=eps)
    weak = APGDT(threat, steps=2, step_size=eps / 10, random_start=False)
    x_adv = weak(model, x, y, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    assert int((robust & (worst < -1e-6)).sum()) > 0, "the weak variant passed: the test cannot tell"


@pytest.mark.parametrize("norm", ["linf"])
def test_square_breaks_the_clearly_breakable_points(norm):
    model, x, y, worst, eps = _setup(norm)
    threat = get_threat(norm, eps=eps)
    x_adv = Square(threat, n_queries=1000)(model, x, y, generator=torch.Generator().manual_seed(1))
    assert bool(threat.contains(x_adv, x).all())
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    assert not bool((~robust & (worst > 1e-6)).any()), "Square broke a robust point: it left the set"
    # Random search reaches the optimum only approximately: ask for the points at least 0.2 eps |w|-units away.
    scale = eps * float(torch.linalg.vector_norm(model[1].weight.detach(), ord=DUAL[norm], dim=1).mean())
    clear = worst < -0.2 * scale
    assert int(clear.sum()) > 5
    missed = robust & clear
    assert int(missed.sum()) == 0, f"{norm}: Square missed {int(missed.sum())} of {int(clear.sum())} clear points"
