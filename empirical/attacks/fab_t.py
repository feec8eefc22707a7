"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020, "Minimally distorted adversarial
examples with a fast adaptive boundary attack"), for l_inf, l_2 and l_1, with AutoAttack's standard settings.

Threat: S_eps(x) = {x + r : |r|_p <= eps} ∩ [0, 1]^d, p in {inf, 2, 1}. FAB searches for the adversarial point of
smallest l_p norm; the evaluation counts it when that norm is at most eps.

For j = 2, ..., n_target_classes + 1, on the points not yet broken: the target t is the class of the j-th
largest clean logit, f(x') = z_t(x') - z_y(x') (x' is misclassified where f > 0 or another class wins), and from
x^0 = x (a restart after the first starts from x + min(eps, best norm so far) u / 2, u a random direction of
unit l_p norm) each of the ``steps`` iterations linearises f at x^k, with the hyperplane
pi_k = {z : f(x^k) + grad f(x^k) . (z - x^k) = 0}, and takes

    d_1 = P_p(x^k; pi_k) - x^k,   d_2 = P_p(x; pi_k) - x,   a = min(|d_1|_p / (|d_1|_p + |d_2|_p), alpha_max)
    x^{k+1} = clip_[0,1]( (1 - a)(x^k + eta d_1) + a (x + eta d_2) ),

where P_p(v; pi) is the point of pi ∩ [0, 1]^d closest to v in l_p (:func:`project_hyperplane_box`; when pi
does not meet the box, the box corner that moves f furthest towards pi). When x^{k+1} is misclassified it is
recorded if its norm |x^{k+1} - x|_p is the smallest so far, and x^{k+1} <- x + beta (x^{k+1} - x) (a step back
towards x, so the iterate approaches the decision boundary from both sides). The bias a towards x keeps the
search near x; eta > 1 overshoots the linearised boundary.

Arguments: ``threat``; ``eps`` (overrides threat.eps); ``steps`` = 100; ``restarts`` = 1 (per target; AutoAttack's
standard version: 1, from x itself); ``n_target_classes`` = 9 (at most K - 1); ``alpha_max`` = 0.1, ``eta`` =
1.05, ``beta`` = 0.9 (the paper's and the standard version's values; ``alpha_max`` is the paper's symbol, not a
step size). Inputs x [n, C, H, W] in [0, 1], y int64 [n]. Returns, per example, the smallest-norm adversarial
point found if its norm is at most eps (a point of S_eps(x)), else x. :meth:`FABT.minimal` returns the
smallest-norm adversarial point for one given target and its norm, whatever eps is.
"""

from __future__ import annotations

import math

import torch

from ..threats import L1Ball, L2Ball, LinfBall
from ..utils import rand_like, randn_like
from .base import Attack, check_positive_int

__all__ = ["FABT", "project_hyperplane_box"]

_P = {"linf": math.inf, "l2": 2.0, "l1": 1.0}


def _norm(r: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(r.reshape(r.shape[0], -1), ord=p, dim=1)


def project_hyperplane_box(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, p: str) -> torch.Tensor:
    """The smallest-l_p move d [n, d] with w . (t + d) = b and t + d in [0, 1]^d, per row of t, w [n, d], b [n].

    With c = w . t - b, every coordinate moves (if at all) by m_i >= 0 in the direction s_i = -sign(c w_i),
    which changes w . t by -|c| / c |w_i| m_i, with room u_i = t_i (s_i < 0) or 1 - t_i (s_i > 0); the problem
    is min |m|_p subject to sum_i |w_i| m_i = |c|, 0 <= m_i <= u_i. Its solutions (KKT, each a monotone
    piecewise-linear equation solved exactly on the sorted breakpoints, O(d log d) per row):

    * l_inf: m_i = min(delta, u_i), delta the root of sum_i |w_i| min(delta, u_i) = |c| (breakpoints u_i);
    * l_2:   m_i = min(lam |w_i|, u_i), lam the root of sum_i |w_i| min(lam |w_i|, u_i) = |c| (breakpoints
      u_i / |w_i|);
    * l_1:   a fractional knapsack: fill the coordinates in decreasing |w_i| up to u_i until |c| is reached.

    If the box does not allow reaching the hyperplane, every useful coordinate moves to its bound (m = u).
    Hand-written: no library projects onto a hyperplane intersected with a box in torch.
    """
    c = (w * t).sum(1) - b
    s = -torch.sign(c)[:, None] * torch.sign(w)
    aw = w.abs()
    u = torch.where(s < 0, t, 1 - t).clamp_min(0)
    u = torch.where(aw > 0, u, torch.zeros_like(u))
    need = c.abs()
    if p == "l1":
        order = torch.argsort(aw, dim=1, descending=True)
        aws, us = aw.gather(1, order), u.gather(1, order)
        gain = torch.cumsum(aws * us, 1)
        before = gain - aws * us
        m_s = torch.where(gain <= need[:, None], us,
                          ((need[:, None] - before) / aws.clamp_min(1e-30)).clamp(min=0) * (before < need[:, None]))
        m_s = torch.minimum(m_s, us)
        m = torch.empty_like(m_s).scatter_(1, order, m_s)
    else:
        # breakpoints v_i of the parameter theta (delta or lam) at which coordinate i reaches its bound; the
        # moved amount is min(theta k_i, u_i) with k_i = 1 (l_inf) or |w_i| (l_2).
        k = torch.where(aw > 0, torch.ones_like(aw), torch.zeros_like(aw)) if p == "linf" else aw
        big = torch.finfo(t.dtype).max
        v = torch.where(aw > 0, u / k.clamp_min(1e-30), torch.full_like(u, big))
        order = torch.argsort(v, dim=1)
        vs, aws, ks, us = v.gather(1, order), aw.gather(1, order), k.gather(1, order), u.gather(1, order)
        full = torch.cumsum(aws * us, 1)                          # coordinates 0..j at their bounds
        slope_after = torch.flip(torch.cumsum(torch.flip(aws * ks, [1]), 1), [1]) - aws * ks  # those > j
        h = full + torch.where(slope_after > 0, vs * slope_after, torch.zeros_like(vs))  # h(v_j)
        reach = h >= need[:, None]
        j = torch.argmax(reach.to(torch.int8), 1)                 # first breakpoint with h >= need
        feasible = reach.any(1)
        full_before = torch.where(j > 0, full.gather(1, (j - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(need))
        slope = slope_after.gather(1, j[:, None])[:, 0] + (aws * ks).gather(1, j[:, None])[:, 0]
        theta = ((need - full_before) / slope.clamp_min(1e-30)).clamp_min(0)
        m = torch.minimum(theta[:, None] * k, u)
        m = torch.where(feasible[:, None], m, u)
    return s * m


class FABT(Attack):
    name = "fab_t"

    def __init__(self, threat, eps: float | None = None, steps: int = 100, restarts: int = 1,
                 n_target_classes: int = 9, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9):
        if not isinstance(threat, (LinfBall, L2Ball, L1Ball)):
            raise ValueError(f"fab_t attacks linf, l2 and l1 threats, got {threat!r}")
        if eps is not None:
            threat = threat.replace(eps=float(eps))
        super().__init__(threat, "margin")
        self.steps = check_positive_int("steps", steps)
        self.restarts = check_positive_int("restarts", restarts)
        self.n_target_classes = check_positive_int("n_target_classes", n_target_classes)
        for name, v, lo, hi in (("alpha_max", alpha_max, 0.0, 1.0), ("eta", eta, 1.0, 10.0), ("beta", beta, 0.0, 1.0)):
            if not (isinstance(v, (int, float)) and lo <= v <= hi):
                raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)

    def _f_and_grad(self, model, xk, y, target):
        xk = xk.detach().requires_grad_(True)
        with torch.enable_grad():
            z = model(xk)
            f = z.gather(1, target[:, None])[:, 0] - z.gather(1, y[:, None])[:, 0]
            (g,) = torch.autograd.grad(f.sum(), xk)
        return f.detach(), g.detach(), z.detach()

    def _start(self, x, radius, generator):
        p = self.threat.name
        if p == "linf":
            u = 2 * rand_like(x, generator) - 1
        else:
            u = randn_like(x, generator)
        u = u / _norm(u, _P[p]).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))
        return (x + 0.5 * radius.reshape(-1, *([1] * (x.dim() - 1))) * u).clamp(0, 1)

    def minimal(self, model, x, y, target, generator=None, x_start=None):
        """(x_best, norm_best): per example the smallest-norm point found that the model misclassifies (x and
        inf where none was found), for the targets ``target`` [n], from ``x_start`` (default x)."""
        p, pn = self.threat.name, _P[self.threat.name]
        n = x.shape[0]
        shape = (-1, *([1] * (x.dim() - 1)))
        x0 = x.detach()
        x0f = x0.reshape(n, -1)
        xk = x0.clone() if x_start is None else x_start.detach().clone()
        best_x, best_n = x0.clone(), torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
        f, g, _ = self._f_and_grad(model, xk, y, target)
        for k in range(self.steps):
            gf = g.reshape(n, -1)
            xkf = xk.reshape(n, -1)
            b = (gf * xkf).sum(1) - f
            d = project_hyperplane_box(torch.cat([xkf, x0f]), torch.cat([gf, gf]), torch.cat([b, b]), p)
            d1, d2 = d[:n], d[n:]
            a1 = _norm(d1, pn).clamp_min(1e-8)
            a2 = _norm(d2, pn).clamp_min(1e-8)
            a = (a1 / (a1 + a2)).clamp(0, self.alpha_max)[:, None]
            xk = ((1 - a) * (xkf + self.eta * d1) + a * (x0f + self.eta * d2)).clamp(0, 1).reshape(x.shape)
            # the new iterate's class needs only a forward pass; the gradient is taken once, after the
            # misclassified points have stepped back towards x (one backward pass per iteration)
            with torch.no_grad():
                adv = model(xk).argmax(1) != y
            r = _norm(xk - x0, pn)
            better = adv & (r < best_n)
            best_x[better] = xk[better]
            best_n[better] = r[better]
            if k == self.steps - 1:
                break
            if bool(adv.any()):
                xk[adv] = x0[adv] + self.beta * (xk[adv] - x0[adv])
            f, g, _ = self._f_and_grad(model, xk, y, target)
        return best_x, best_n

    def perturb(self, model, x, y, generator):
        with torch.no_grad():
            logits = model(x)
        order = logits.argsort(dim=1, descending=True)
        eps = float(self.threat.eps)
        out = x.clone()
        found = logits.argmax(1) != y
        best_n = torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
        n_t = min(self.n_target_classes, logits.shape[1] - 1)
        for j in range(1, n_t + 1):
            for rs in range(self.restarts):
                idx = (~found).nonzero().flatten()
                if idx.numel() == 0:
                    return out
                start = None
                if rs > 0:
                    start = self._start(x[idx], torch.clamp(best_n[idx], max=eps), generator)
                xb, nb = self.minimal(model, x[idx], y[idx], order[idx, j], generator, start)
                better = nb < best_n[idx]
                best_n[idx[better]] = nb[better]
                ok = nb <= eps
                out[idx[ok]] = xb[ok]
                found[idx[ok]] = True
        return out
