"""APGD-l_1 against the exact optimum of the l_1 attack on a linear model, from MNIST-like points.

On a linear margin m(x') = w.x' + c the best perturbation of S(x) = {x + r : |r|_1 <= eps} ∩ [0, 1]^d is a
fractional knapsack: coordinate i can move by at most u_i and each unit of
l_1 budget spent on it lowers the margin by |w_i| (towards -sign(w_i): capacity x_i if w_i > 0, else 1 - x_i), so the optimum fills the coordinates in decreasing order of
|w_i| up to their face until the budget eps is spent. The test computes that optimum by sorting (independent of
the attack and of the projection code) and asks APGD-l_1 to reach it within 1% (the acceptance criterion) from
points with most pixels at 0 or 1, where the box binds, and from points well inside the box, where the optimum is
a vertex of the l_1 ball. A deliberately wrong variant (the step also spends budget on coordinates at a box face
whose gradient points outwards, which the projection then clips) must fail the same test. Measured with 100
steps: this module's APGD-l_1 worst gaps 0.3% (faces, eps 10), 0.03% (faces, eps 3), 0 (inside); the previous
l_1 attack of this project 0.7%, 1.6% and 2.9% (it fails the last two); AutoAttack's APGD-l_1 (use_largereps, run from a copy outside
the repository) 0.4% (faces, eps 10) and 9.1% (inside: it stalls on a face of the l_1 ball).
"""

import pytest

torch = pytest.importorskip("torch")

from empirical.attacks import APGD, attack_for  # noqa: E402
from empirical.threats import L1Ball  # noqa: E402
from tests.tolerances import ATTACK_OPTIMUM_RTOL  # noqa: E402

torch.set_num_threads(1)

D_SIDE = 28  # MNIST-like 28 x 28 images


def knapsack_optimum(w: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """max_r (-w.r) over |r|_1 <= eps, 0 <= x + r <= 1, per row of x [n, d] (greedy fractional knapsack)."""
    cap = torch.where(w > 0, x, 1 - x)  # [n, d] how far coordinate i can move towards -sign(w_i)
    order = torch.argsort(w.abs(), descending=True)
    cap_s, val_s = cap[:, order], w.abs()[order]
    spent_before = torch.cumsum(cap_s, 1) - cap_s
    take = (eps - spent_before).clamp_min(0).clamp_max(cap_s)
    return (take * val_s).sum(1)


def mnist_like(n: int, g: torch.Generator, jitter: float = 0.01) -> torch.Tensor:
    """Images with ~75% pixels within ``jitter`` of 0, ~12% within ``jitter`` of 1 and the rest uniform in
    (0, 1), like MNIST digits (whose background is 0 and strokes near 1)."""
    u = torch.rand(n, 1, D_SIDE, D_SIDE, generator=g, dtype=torch.float64)
    v = torch.rand(n, 1, D_SIDE, D_SIDE, generator=g, dtype=torch.float64)
    e = jitter * torch.rand(n, 1, D_SIDE, D_SIDE, generator=g, dtype=torch.float64)
    return torch.where(u < 0.75, e, torch.where(u < 0.87, 1 - e, v))


def linear_model(w: torch.Tensor, c: float) -> torch.nn.Module:
    d = w.numel()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-w / 2, w / 2]))  # margin z_1 - z_0 = w.x + c
        model[1].bias.copy_(torch.tensor([-c / 2, c / 2], dtype=torch.float64))
    return model.eval()


class BoxBlindAPGD(APGD):
    """The wrong variant: the top-k coordinates are chosen among all, including those at a box face whose
    gradient pushes outwards (their share of the step is clipped away by the projection)."""

    @staticmethod
    def _l1_direction(t, x_adv, grad, k):
        return t.sparse_direction(x_adv, grad, k=k, signed=True, box=False)


def _worst_gap(attack, kind: str, eps: float, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    d = D_SIDE * D_SIDE
    # Scale 0.1: margins of a few units, so the cross-entropy the attack climbs does not round to 0.
    w = 0.1 * torch.randn(d, generator=g, dtype=torch.float64)
    x = mnist_like(12, g) if kind == "faces" else 0.3 + 0.4 * torch.rand(12, 1, D_SIDE, D_SIDE, generator=g,
                                                                         dtype=torch.float64)
    opt = knapsack_optimum(w, x.reshape(len(x), -1), eps)
    # Bias: every point keeps margin >= 2 after the optimal attack, so the highest-loss point is the optimum.
    m0 = x.reshape(len(x), -1) @ w
    c = float((opt - m0).max()) + 2.0
    model = linear_model(w, c)
    y = torch.ones(len(x), dtype=torch.long)
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(seed + 1))
    threat = L1Ball(eps=eps)
    assert bool(threat.contains(x_adv, x).all()), "the attack left ball ∩ box"
    drop = m0 - x_adv.reshape(len(x), -1) @ w
    assert bool((drop <= opt * (1 + 1e-9) + 1e-9).all()), "an attack beat the optimum: the set is not respected"
    return float(((opt - drop) / opt).max())


def test_knapsack_optimum_matches_linear_programme():
    """The greedy optimum against scipy's LP solver (HiGHS) on r = p - q, p, q >= 0: an independent route."""
    from scipy.optimize import linprog
    import numpy as np

    g = torch.Generator().manual_seed(3)
    w = torch.randn(D_SIDE * D_SIDE, generator=g, dtype=torch.float64)
    x = mnist_like(2, g, jitter=0.0).reshape(2, -1)
    greedy = knapsack_optimum(w, x, 10.0)
    wn = w.numpy()
    for i in range(2):
        xn = x[i].numpy()
        res = linprog(np.concatenate([wn, -wn]), A_ub=np.ones((1, 2 * wn.size)), b_ub=[10.0],
                      bounds=[(0, 1 - v) for v in xn] + [(0, v) for v in xn], method="highs")
        # HiGHS solves to ~1e-9 relative; the greedy sum is exact up to rounding.
        assert abs(-res.fun - float(greedy[i])) <= 1e-7 * abs(res.fun), (res.fun, float(greedy[i]))


# (kind, eps): MNIST-like points at the MNIST budget and below it (where the previous l_1 step missed the
# optimum by 1.6%), and points well inside the box (optimum at a vertex of the l_1 ball; previous: 2.9%).
@pytest.mark.parametrize("kind,eps", [("faces", 10.0), ("faces", 3.0), ("inside", 1.0)])
def test_apgd_l1_reaches_knapsack_optimum(kind, eps):
    gap = _worst_gap(APGD(L1Ball(eps=eps), steps=100), kind, eps)
    assert gap <= ATTACK_OPTIMUM_RTOL, f"APGD-l1 ({kind}): worst relative gap to the knapsack optimum {gap:.4f}"


def test_eval_suite_l1_reaches_knapsack_optimum_from_faces():
    gap = _worst_gap(attack_for(L1Ball(eps=10.0), "apgd", restarts=1), "faces", 10.0)
    assert gap <= ATTACK_OPTIMUM_RTOL, f"eval suite l1: worst relative gap {gap:.4f}"


def test_box_blind_variant_fails_the_same_test():
    gap = _worst_gap(BoxBlindAPGD(L1Ball(eps=10.0), steps=100), "faces", 10.0)
    assert gap > ATTACK_OPTIMUM_RTOL, f"the wrong variant passed (gap {gap:.4f}): the test cannot tell"
