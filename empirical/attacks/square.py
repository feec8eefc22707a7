"""Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): gradient-free random search, for l_inf
and l_2. Used by the gradient-masking checks (:mod:`empirical.gradient_masking`): if a search that never looks
at a gradient finds adversarial points that the gradient attacks missed, the gradients are uninformative.

Threat: S_eps(x) = {x + r : |r|_p <= eps} ∩ [0, 1]^d, p in {inf, 2}. Objective: the margin
m(x') = z_y(x') - max_{j != y} z_j(x'), minimised (m < 0: misclassified). At query i a square window of side
s_i = max(1, round(sqrt(p_i d / C))) (at most H - 1) is drawn at a uniformly random position per example, with
p_i = p_init halved at queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (the paper's schedule, not
rescaled to the number of queries); a proposal is kept only if it lowers the margin.

* l_inf: start from vertical stripes x + eps (+-1 per column and channel); a proposal sets the window to
  x + eps (+-1 per channel) (resampled when it would not change the current point).
* l_2: start from vertical stripes of +-eps/sqrt(d) (|r|_2 = eps); a proposal takes a second window of the same
  side, moves its perturbation mass into the first window, adds to the first window a centred bump
  (1 / (Chebyshev distance to the window centre + 1), random sign per channel), and rescales the first window so
  that |r|_2 stays eps. This is the paper's mass-moving update with one bump profile instead of its
  two-lobe "meta pseudo-Gaussian" (written from the paper's description).

Every point is projected exactly onto ball ∩ box. Arguments: ``threat``; ``eps``; ``n_queries`` = 5000;
``p_init`` = 0.8; ``restarts`` = 1. Deterministic given the generator. Inputs x [n, C, H, W] (H = W) in [0, 1].
Returns the lowest-margin point found per example.
"""

from __future__ import annotations

import math

import torch

from ..threats import L2Ball, LinfBall
from ..utils import rand_like
from .base import Attack, check_positive_int
from .losses import margin

__all__ = ["Square", "p_schedule"]

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, i: int) -> float:
    """Fraction of the image the window covers at query i."""
    return p_init / 2 ** sum(i > q for q in _HALVINGS)


def _randint(n, high, generator, device):
    return torch.randint(0, high, (n,), generator=generator, device="cpu").to(device)


class Square(Attack):
    name = "square"

    def __init__(self, threat, eps: float | None = None, n_queries: int = 5000, p_init: float = 0.8,
                 restarts: int = 1):
        if not isinstance(threat, (LinfBall, L2Ball)):
            raise ValueError(f"square attacks linf and l2 threats, got {threat!r}")
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

    @torch.no_grad()
    def _windows(self, n, c, h, w, s, generator, device):
        vh = _randint(n, h - s + 1, generator, device)
        vw = _randint(n, w - s + 1, generator, device)
        rows = torch.arange(h, device=device)[None, :]
        cols = torch.arange(w, device=device)[None, :]
        mr = (rows >= vh[:, None]) & (rows < (vh + s)[:, None])
        mc = (cols >= vw[:, None]) & (cols < (vw + s)[:, None])
        mask = (mr[:, :, None] & mc[:, None, :])[:, None]  # [n, 1, h, w]
        return mask, vh, vw

    @torch.no_grad()
    def _run(self, model, x, y, generator):
        t = self.threat
        n, c, h, w = x.shape
        d = c * h * w
        signs = torch.where(rand_like(x[:, :, :1, :], generator) < 0.5, -1.0, 1.0).to(x.dtype)
        if isinstance(t, LinfBall):
            delta = t.eps * signs.expand_as(x)
        else:
            delta = t.eps / math.sqrt(d) * signs.expand_as(x)
        x_best = t.project(x + delta, x)
        m_best = self._margin(model, x_best, y)
        for i in range(self.n_queries):
            active = (m_best > 0).nonzero().flatten()
            if active.numel() == 0:
                break
            xa, xb, ya = x[active], x_best[active], y[active]
            k = active.numel()
            s = max(1, int(round(math.sqrt(p_schedule(self.p_init, i) * d / c))))
            s = min(s, h - 1)
            mask, vh, vw = self._windows(k, c, h, w, s, generator, x.device)
            if isinstance(t, LinfBall):
                new = t.eps * torch.where(rand_like(xa[:, :, :1, :1], generator) < 0.5, -1.0, 1.0).to(x.dtype)
                cand = torch.where(mask, (xa + new).clamp(0, 1), xb)
                same = ((cand - xb).abs() < 1e-7).reshape(k, -1).all(1)
                if bool(same.any()):  # flip the proposal where it changes nothing
                    flipped = torch.where(mask, (xa - new).clamp(0, 1), xb)
                    cand = torch.where(same[:, None, None, None], flipped, cand)
            else:
                r = xb - xa
                mask2, _, _ = self._windows(k, c, h, w, s, generator, x.device)
                both = mask | mask2
                kept = torch.where(both, torch.zeros_like(r), r)
                budget = (t.eps ** 2 - kept.reshape(k, -1).pow(2).sum(1)).clamp_min(0).sqrt()
                ci = (vh.to(x.dtype) + (s - 1) / 2)[:, None, None]
                cj = (vw.to(x.dtype) + (s - 1) / 2)[:, None, None]
                ii = torch.arange(h, device=x.device, dtype=x.dtype)[None, :, None]
                jj = torch.arange(w, device=x.device, dtype=x.dtype)[None, None, :]
                bump = 1.0 / (torch.maximum((ii - ci).abs(), (jj - cj).abs()) + 1.0)  # [k, h, w]
                sg = torch.where(rand_like(xa[:, :, :1, :1], generator) < 0.5, -1.0, 1.0).to(x.dtype)
                win = torch.where(mask, r + sg * bump[:, None] * t.eps / s, torch.zeros_like(r))
                wn = win.reshape(k, -1).norm(dim=1).clamp_min(1e-12)
                r_new = kept + win * (budget / wn)[:, None, None, None]
                cand = t.project(xa + r_new, xa)
            m_new = self._margin(model, cand, ya)
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
