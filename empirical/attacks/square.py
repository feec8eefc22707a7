"""Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): gradient-free random search, for l_inf,
l_2 and l_1 (the l_1 variant of Croce, Singh & Hein's "Mind the box", as in AutoAttack's standard version).
The last attack of the evaluation suite: a search that never looks at a gradient finds the adversarial points
that uninformative (masked) gradients hide from APGD and FAB.

Threat: S_eps(x) = {x + r : |r|_p <= eps} ∩ [0, 1]^d, p in {inf, 2, 1}. Objective: the margin
m(x') = z_y(x') - max_{j != y} z_j(x'), minimised (m < 0: misclassified); a proposal is kept only if it lowers
the margin. Query i uses square windows of side s_i = round(sqrt(p_i d / C)) (l_inf: at least 1; l_2, l_1: at
least 3 and odd; at most H) at uniformly random positions, drawn per example, with p_i = p_init halved after
queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 (the paper's schedule, not rescaled to the number of
queries, as in AutoAttack's standard version).

* l_inf: start from vertical stripes x + eps (+-1 per column and channel); a proposal sets the window to
  x + eps (+-1 per channel), clipped to the box (redrawn with the other sign when it would not change the point).
* l_2 and l_1: the profile of a window of side s is eta_s = [M(s//2, s); -M(s - s//2, s)] (two lobes of opposite
  sign, each of unit l_p norm, transposed with probability 1/2), M(a, b)_ij = sum_{k = r_ij}^{K-1} (k + 1)^(-q), r_ij the Chebyshev
  distance of (i, j) from the centre (a//2, b//2), K = max(a, b)//2 + 1, q = 2 (l_2) or 4 (l_1), normalised to
  unit l_p norm. Start: a 5 x 5 grid of tiles of side H//5 (centred), each eta_{H//5} with a random sign per
  channel. A proposal, per channel: with r the current perturbation, W_1 and W_2 two random windows of side s,
  n_w = |r on W_1 ∪ W_2|_p and the free budget f = max(eps^p - |r|_p^p, 0) / C, the window W_1 becomes
  (eta_s sign + r_{W_1} / |r_{W_1}|_p) rescaled to l_p norm (f + n_w^p)^(1/p), and W_2 (outside W_1) is emptied:
  the mass of both windows, and whatever budget was free, is concentrated in W_1. Then l_2: r <- eps r / |r|_2,
  clipped to the box (clipping towards x keeps |r|_2 <= eps); l_1: r is projected exactly onto ball ∩ box.

Arguments: ``threat``; ``eps``; ``n_queries`` = 5000; ``p_init`` = 0.8; ``restarts`` = 1 (each on the points still
correctly classified). Deterministic given the generator. Inputs x [n, C, H, W] (H = W) in [0, 1]. Returns the
lowest-margin point found per example.
"""

from __future__ import annotations

import math

import torch

from ..threats import L1Ball, L2Ball, LinfBall
from ..utils import rand_like
from .base import Attack, check_positive_int
from .losses import margin

__all__ = ["Square", "p_schedule", "window_profile"]

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, i: int) -> float:
    """Fraction of the image the window covers at query i."""
    return p_init / 2 ** sum(i > q for q in _HALVINGS)


def _rect(a: int, b: int, q: float, dtype) -> torch.Tensor:
    """M(a, b): sum_{k = r}^{K-1} (k + 1)^(-q) at Chebyshev distance r from the centre (a//2, b//2)."""
    big_k = max(a, b) // 2 + 1
    tail = torch.flip(torch.cumsum(torch.flip((torch.arange(big_k, dtype=dtype) + 1) ** (-q), [0]), 0), [0])
    ii = (torch.arange(a) - a // 2).abs()[:, None]
    jj = (torch.arange(b) - b // 2).abs()[None, :]
    r = torch.maximum(ii, jj).clamp(max=big_k - 1)
    return tail[r]


def window_profile(s: int, norm: str, dtype=torch.float64) -> torch.Tensor:
    """eta_s [s, s]: two lobes of opposite sign (rows 0..s//2-1 positive), unit l_2 (``l2``) or l_1 (``l1``)
    norm."""
    q, pn = (2.0, 2.0) if norm == "l2" else (4.0, 1.0)

    def lobe(a):
        m = _rect(a, s, q, dtype)
        return m / torch.linalg.vector_norm(m, ord=pn)

    top = lobe(s // 2) if s // 2 > 0 else torch.zeros(0, s, dtype=dtype)
    eta = torch.cat([top, -lobe(s - s // 2)], 0)
    return eta / torch.linalg.vector_norm(eta, ord=pn)


def _randint(n, high, generator, device):
    return torch.randint(0, high, (n,), generator=generator, device="cpu").to(device)


def _sign(shape, generator, like):
    return torch.where(rand_like(like.new_empty(shape), generator) < 0.5, -1.0, 1.0).to(like.dtype)


class Square(Attack):
    name = "square"

    def __init__(self, threat, eps: float | None = None, n_queries: int = 5000, p_init: float = 0.8,
                 restarts: int = 1):
        if not isinstance(threat, (LinfBall, L2Ball, L1Ball)):
            raise ValueError(f"square attacks linf, l2 and l1 threats, got {threat!r}")
        if eps is not None:
            threat = threat.replace(eps=float(eps))
        super().__init__(threat, "margin")
        self.n_queries = check_positive_int("n_queries", n_queries)
        self.restarts = check_positive_int("restarts", restarts)
        if not (isinstance(p_init, (int, float)) and 0 < p_init <= 1):
            raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
        self.p_init = float(p_init)

    @torch.no_grad()
    def _margin(self, model, x, y):
        return -margin(model(x), y)  # z_y - max other

    @staticmethod
    def _index(k, c, s, vh, vw, device):
        """Advanced-index tuple selecting the window [k, c, s, s] at rows vh.., columns vw.. per example."""
        ar = torch.arange(s, device=device)
        return (torch.arange(k, device=device)[:, None, None, None], torch.arange(c, device=device)[None, :, None, None],
                (vh[:, None] + ar)[:, None, :, None], (vw[:, None] + ar)[:, None, None, :])

    def _profiles(self, k, c, s, generator, like):
        """eta_s per example and channel [k, c, s, s], random sign per channel, transposed with prob. 1/2."""
        eta = window_profile(s, self.threat.name, like.dtype).to(like.device)
        flip = rand_like(like.new_empty(k), generator) < 0.5
        prof = torch.where(flip[:, None, None], eta.T[None], eta[None])[:, None]
        return prof * _sign((k, c, 1, 1), generator, like)

    def _pnorm(self, r, dims):
        if self.threat.name == "l2":
            return r.pow(2).sum(dims).sqrt()
        return r.abs().sum(dims)

    def _finish(self, x, r):
        """The point of S(x) for the perturbation r (l_2: rescaled to eps and clipped; l_1: exact projection)."""
        t = self.threat
        if t.name == "l2":
            nr = r.reshape(r.shape[0], -1).norm(dim=1).clamp_min(1e-12)
            return (x + r * (t.eps / nr).reshape(-1, 1, 1, 1)).clamp(0, 1)
        return t.project(x + r, x)

    @torch.no_grad()
    def _init(self, x, generator):
        t = self.threat
        n, c, h, w = x.shape
        if t.name == "linf":
            return t.project(x + t.eps * _sign((n, c, 1, w), generator, x), x)
        s = h // 5
        r = torch.zeros_like(x)
        start = (h - 5 * s) // 2
        for a in range(5):
            for b in range(5):
                vh = torch.full((n,), start + a * s, dtype=torch.long, device=x.device)
                vw = torch.full((n,), start + b * s, dtype=torch.long, device=x.device)
                r[self._index(n, c, s, vh, vw, x.device)] += self._profiles(n, c, s, generator, x)
        return self._finish(x, r)

    @torch.no_grad()
    def _propose(self, xa, xb, i, generator):
        t = self.threat
        k, c, h, w = xa.shape
        d = c * h * w
        p = p_schedule(self.p_init, i)
        if t.name == "linf":
            s = min(max(1, int(round(math.sqrt(p * d / c)))), h)
            vh, vw = _randint(k, h - s + 1, generator, xa.device), _randint(k, w - s + 1, generator, xa.device)
            ix = self._index(k, c, s, vh, vw, xa.device)
            sg = _sign((k, c, 1, 1), generator, xa)
            xa_w = xa[ix]
            win = (xa_w + t.eps * sg).clamp(0, 1)
            # outside the window the proposal equals xb, so comparing the window alone is enough
            same = ((win - xb[ix]).abs() < 1e-7).reshape(k, -1).all(1)
            if bool(same.any()):  # the other sign where the proposal changes nothing
                win = torch.where(same[:, None, None, None], (xa_w - t.eps * sg).clamp(0, 1), win)
            cand = xb.clone()
            cand[ix] = win
            return cand
        s = max(3, int(round(math.sqrt(p * d / c))))
        s = min(s + 1 if s % 2 == 0 else s, h)
        pn = 2.0 if t.name == "l2" else 1.0
        r = xb - xa
        vh, vw = _randint(k, h - s + 1, generator, xa.device), _randint(k, w - s + 1, generator, xa.device)
        vh2, vw2 = _randint(k, h - s + 1, generator, xa.device), _randint(k, w - s + 1, generator, xa.device)
        ix1, ix2 = self._index(k, c, s, vh, vw, xa.device), self._index(k, c, s, vh2, vw2, xa.device)
        both = torch.zeros_like(r, dtype=torch.bool)
        both[ix1] = True
        both[ix2] = True
        n_w = self._pnorm(torch.where(both, r, torch.zeros_like(r)), (2, 3))           # [k, c]
        n_img = self._pnorm(r, (1, 2, 3))                                               # [k]
        free = (t.eps ** pn - n_img ** pn).clamp_min(0) / c                             # per channel
        w1 = r[ix1]
        new = self._profiles(k, c, s, generator, xa) + w1 / (1e-12 + self._pnorm(w1, (2, 3))[:, :, None, None])
        target = (free[:, None] + n_w ** pn) ** (1 / pn)
        new = new / (1e-12 + self._pnorm(new, (2, 3)))[:, :, None, None] * target[:, :, None, None]
        r = r.clone()
        r[ix2] = 0.0
        r[ix1] = new
        return self._finish(xa, r)

    @torch.no_grad()
    def _run(self, model, x, y, generator):
        x_best = self._init(x, generator)
        m_best = self._margin(model, x_best, y)
        for i in range(self.n_queries):
            active = (m_best > 0).nonzero().flatten()
            if active.numel() == 0:
                break
            cand = self._propose(x[active], x_best[active], i, generator)
            m_new = self._margin(model, cand, y[active])
            better = m_new < m_best[active]
            sel = active[better]
            x_best[sel] = cand[better]
            m_best[sel] = m_new[better]
        return x_best, m_best

    def perturb(self, model, x, y, generator):
        with torch.no_grad():
            m_best = self._margin(model, x, y)
        x_best = x.clone()
        for _ in range(self.restarts):
            idx = (m_best > 0).nonzero().flatten()
            if idx.numel() == 0:
                break
            xr, mr = self._run(model, x[idx], y[idx], generator)
            better = mr < m_best[idx]
            x_best[idx[better]] = xr[better]
            m_best[idx[better]] = mr[better]
        return x_best
