"""Oracles for the attacks that complete the evaluation suite (FAB-T and the full Square), and for the suite.

* FAB-T against the closed form of a linear model z = W x + b: for the target t, the smallest l_p perturbation
  that makes z_t >= z_y is (z_y - z_t) / |w_y - w_t|_q (q the dual norm of p) when the box does not bind
  (x in [0.35, 0.65]^d and an optimum that moves every coordinate by less than 0.35); for l_1 the box binds and
  the optimum is the linear program min sum_i m_i, sum_i |w_i| m_i >= z_y - z_t, 0 <= m_i <= room_i, solved by
  scipy's HiGHS (an independent route).
* Square (l_2, and l_inf / l_1) against the exact robust set of a linear model with spatially smooth weights
  (Square's windows assume that the useful perturbation is spatially coherent, as for image classifiers; a
  model with i.i.d. pixel weights is its worst case): it must break every point whose worst margin is below
  SQUARE_MARGIN_FRACTION of the budget's effect and none that is robust.
* A model whose gradient is masked (a step function in front of a linear classifier) is broken by the suite
  ``attack_for(threat, "eval")`` and not by the APGD pair (``"apgd"``), and the per-example log names Square.
"""

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from empirical.attacks import FABT, Square, attack_for  # noqa: E402
from empirical.attacks.fab_t import project_hyperplane_box  # noqa: E402
from empirical.evaluate import attack_log, robustness_matrix_and_log  # noqa: E402
from empirical.threats import get_threat  # noqa: E402

from .tolerances import FAB_L1_RTOL, FAB_RTOL, SQUARE_MARGIN_FRACTION, report  # noqa: E402

torch.set_num_threads(1)

K = 10
DUAL = {"linf": 1.0, "l2": 2.0, "l1": math.inf}


def _linear(W, b):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(W.shape[1], W.shape[0])).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(W)
        model[1].bias.copy_(b)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _fab_fixture(n=20, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = side * side
    W = torch.randn(K, d, generator=g, dtype=torch.float64)
    x = 0.35 + 0.3 * torch.rand(n, 1, side, side, generator=g, dtype=torch.float64)
    b = -(W @ torch.full((d,), 0.5, dtype=torch.float64))
    model = _linear(W, b)
    with torch.no_grad():
        z = model(x)
    return model, W, x, z, z.argmax(1)


def _l1_optimum(a, u, gap):
    """min sum m s.t. a.m >= gap, 0 <= m <= u (scipy HiGHS)."""
    from scipy.optimize import linprog

    res = linprog(c=[1.0] * len(a), A_ub=[[-v for v in a]], b_ub=[-gap], bounds=list(zip([0.0] * len(a), u)),
                  method="highs")
    assert res.status == 0, res.message
    return res.fun


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_fab_t_finds_the_minimal_perturbation_of_a_linear_model(norm):
    model, W, x, z, y = _fab_fixture()
    order = z.argsort(1, descending=True)
    fab = FABT(get_threat(norm, eps=1.0))
    for j in (1, 3):  # the runner-up class and a farther one
        t = order[:, j]
        gap = (z.gather(1, y[:, None]) - z.gather(1, t[:, None]))[:, 0]
        dw = W[y] - W[t]
        if norm == "l1":
            xf = x.reshape(len(x), -1)
            room = torch.where(dw > 0, xf, 1 - xf)  # moving against w_y - w_t: down where positive
            exact = torch.tensor([_l1_optimum(dw[i].abs().tolist(), room[i].tolist(), float(gap[i]))
                                  for i in range(len(x))], dtype=torch.float64)
            rtol = FAB_L1_RTOL
        else:
            exact = gap / torch.linalg.vector_norm(dw, ord=DUAL[norm], dim=1)
            # the closed form ignores the box: check that its optimum stays inside
            step = exact / torch.linalg.vector_norm(dw, ord=2, dim=1) * dw.abs().amax(1) if norm == "l2" else exact
            assert float(step.max()) < 0.35
            rtol = FAB_RTOL
        x_best, found = fab.minimal(model, x, y, t)
        with torch.no_grad():
            assert bool((model(x_best).argmax(1) != y).all()), "a returned point is not adversarial"
        measured = torch.linalg.vector_norm((x_best - x).reshape(len(x), -1), ord={"l2": 2, "linf": math.inf,
                                                                                   "l1": 1}[norm], dim=1)
        assert torch.allclose(measured, found)
        assert bool((found >= exact * (1 - 1e-7)).all()), report(f"{norm} below the optimum", found, exact)
        assert bool((found <= exact * (1 + rtol)).all()), report(f"FAB-T {norm} target {j}", found, exact)
    # the test can fail: one FAB step overshoots the linearised boundary by eta = 1.05
    _, one = FABT(get_threat(norm, eps=1.0), steps=1).minimal(model, x, y, order[:, 1])
    gap = (z.gather(1, y[:, None]) - z.gather(1, order[:, 1:2]))[:, 0]
    if norm != "l1":
        exact = gap / torch.linalg.vector_norm(W[y] - W[order[:, 1]], ord=DUAL[norm], dim=1)
        assert bool((one > exact * (1 + rtol)).any())


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_fab_t_breaks_exactly_the_points_within_eps(norm):
    """perturb: a point is returned adversarial iff its smallest breaking radius (over the 9 targets) is <= eps."""
    model, W, x, z, y = _fab_fixture(n=16, seed=1)
    other = torch.arange(K)[None] != y[:, None]
    gap = z.gather(1, y[:, None]) - z
    dual = torch.linalg.vector_norm(W[y][:, None, :] - W[None, :, :], ord=DUAL[norm], dim=2)
    radius = torch.where(other, gap / dual, torch.full_like(gap, math.inf)).min(1).values
    eps = float(radius.median())
    threat = get_threat(norm, eps=eps)
    x_adv = FABT(threat)(model, x, y)
    assert bool(threat.contains(x_adv, x).all())
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    clear = (radius - eps).abs() > FAB_RTOL * eps  # radii within FAB's tolerance of eps may go either way
    assert int((robust != (radius > eps))[clear].sum()) == 0


def test_hyperplane_projection_on_a_box():
    """project_hyperplane_box against scipy: the l_2 case is a quadratic program; check optimality by comparing
    with SLSQP from many starts on a small case, and that every result lies on the hyperplane and in the box."""
    from scipy.optimize import minimize

    g = torch.Generator().manual_seed(3)
    n, d = 6, 7
    t = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = (w * t).sum(1) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    for p, ordv in (("l2", 2), ("linf", math.inf), ("l1", 1)):
        dlt = project_hyperplane_box(t, w, b, p)
        z = t + dlt
        assert bool(((z >= -1e-12) & (z <= 1 + 1e-12)).all())
        assert torch.allclose((w * z).sum(1), b, atol=1e-9)
        for i in range(n):
            ti, wi, bi = t[i].numpy(), w[i].numpy(), float(b[i])
            obj = {"l2": lambda v: float((v ** 2).sum())}.get(p)
            if obj is None:
                continue
            res = minimize(obj, dlt[i].numpy() * 0, method="SLSQP", bounds=[(-a, 1 - a) for a in ti],
                           constraints=[{"type": "eq", "fun": lambda v: float(wi @ (ti + v) - bi)}],
                           options={"ftol": 1e-14, "maxiter": 500})
            assert res.success
            assert float(torch.linalg.vector_norm(dlt[i], ord=ordv)) <= math.sqrt(res.fun) * (1 + 1e-6) + 1e-9


def _smooth_fixture(norm, n=30, side=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = side * side
    W = F.avg_pool2d(torch.randn(K, 1, side, side, generator=g, dtype=torch.float64), 5, 1, 2).reshape(K, d)
    x = 0.35 + 0.3 * torch.rand(n, 1, side, side, generator=g, dtype=torch.float64)
    b = -(W @ torch.full((d,), 0.5, dtype=torch.float64))
    model = _linear(W, b)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    gap = z.gather(1, y[:, None]) - z
    dual = torch.linalg.vector_norm(W[y][:, None, :] - W[None, :, :], ord=DUAL[norm], dim=2)
    other = torch.arange(K)[None] != y[:, None]
    radius = torch.where(other, gap / dual, torch.full_like(gap, math.inf)).min(1).values
    eps = float(radius.median())
    # worst margin over the classes in units of the budget's largest effect on that pair, eps |w_y - w_t|_q
    rel = torch.where(other, (gap - eps * dual) / (eps * dual), torch.full_like(gap, math.inf)).min(1).values
    return model, x, y, rel, eps


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_square_breaks_every_clearly_breakable_point_and_no_robust_one(norm):
    model, x, y, rel, eps = _smooth_fixture(norm)
    threat = get_threat(norm, eps=eps)
    x_adv = Square(threat, n_queries=500)(model, x, y, generator=torch.Generator().manual_seed(1))
    assert bool(threat.contains(x_adv, x).all())
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    assert not bool((~robust & (rel > 1e-9)).any()), "Square broke a robust point: it left the set"
    clear = rel < -SQUARE_MARGIN_FRACTION[norm]
    assert int(clear.sum()) >= 10
    missed = robust & clear
    assert int(missed.sum()) == 0, f"{norm}: Square missed {int(missed.sum())} of {int(clear.sum())} clear points"
    # the test can fail: a search of 3 queries misses clear points
    weak = Square(threat, n_queries=3)(model, x, y, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert int(((model(weak).argmax(1) == y) & clear).sum()) > 0


class _StepLinear(torch.nn.Module):
    """A linear classifier behind a step function: round(32 x) / 32 has zero gradient almost everywhere, so the
    gradient attacks (APGD, FAB) see no direction (APGD breaks only what its random start happens to break),
    while the decision regions are close to those of the linear model."""

    def __init__(self, W, b):
        super().__init__()
        self.W = torch.nn.Parameter(W, requires_grad=False)
        self.b = torch.nn.Parameter(b, requires_grad=False)

    def forward(self, x):
        q = torch.round(x * 32) / 32
        return q.flatten(1) @ self.W.T + self.b


def test_masked_gradient_model_is_broken_by_the_suite_not_by_apgd():
    g = torch.Generator().manual_seed(0)
    side, n = 10, 30
    W = F.avg_pool2d(torch.randn(K, 1, side, side, generator=g), 3, 1, 1).reshape(K, -1)
    x = 0.3 + 0.4 * torch.rand(n, 1, side, side, generator=g)
    model = _StepLinear(W, -(W @ torch.full((side * side,), 0.5))).eval()
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    # budget: twice the median l_inf radius of the linear model without the step
    gap = z.gather(1, y[:, None]) - z
    dual = torch.linalg.vector_norm(W[y][:, None, :] - W[None, :, :], ord=1, dim=2)
    other = torch.arange(K)[None] != y[:, None]
    threat = get_threat("linf", eps=2 * float(torch.where(other, gap / dual, torch.inf).min(1).values.median()))
    common = dict(steps=20)
    suites = {"apgd": attack_for(threat, "apgd", **common), "eval": attack_for(threat, "eval", n_queries=300, **common)}
    out = {}
    for name, atk in suites.items():
        M, first, names = robustness_matrix_and_log(model, x, y, [threat], attacks=[atk],
                                                    generator=torch.Generator().manual_seed(0))
        out[name] = (M[:, 0], attack_log(first, names, ["linf"]))
    acc_apgd, acc_eval = float(out["apgd"][0].float().mean()), float(out["eval"][0].float().mean())
    log = out["eval"][1]
    # measured: APGD pair .77, the suite .13 (Square breaks 19 of the 23 that APGD left)
    assert acc_apgd >= 0.6 and acc_eval <= 0.25, (acc_apgd, acc_eval)
    assert log["attacks"]["linf"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    by = log["broken_by_attack"]["linf"]
    assert by["square"] >= 12 and by["fab-t"] == 0, by  # FAB-T needs gradients too
    # the log and the matrix agree: robust in M iff the log says "robust"
    assert [v == "robust" for v in log["first_broken_by"]["linf"]] == out["eval"][0].tolist()
