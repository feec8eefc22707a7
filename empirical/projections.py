"""Exact Euclidean projections onto l_p balls intersected with the pixel box [lo, hi], batched over the first axis.

The l_inf case is coordinatewise (a clamp, in :mod:`empirical.threats`); the l_2 and l_1 cases below solve the
KKT conditions of the projection onto ball ∩ box exactly (a one-dimensional root in the multiplier).
"""

from __future__ import annotations

import torch

__all__ = ["flatten_batch", "project_l1_box", "project_l1", "project_l2_box"]


def flatten_batch(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


# ---------------------------------------------------------------------------------------------------
# Exact projections. Written by hand: no maintained library projects onto (l_p ball) ∩ (box) in torch.
# ---------------------------------------------------------------------------------------------------

def project_l1_box(v: torch.Tensor, eps: float | torch.Tensor, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None) -> torch.Tensor:
    """Exact Euclidean projection of each row of ``v`` [n, d] onto {r : |r|_1 <= eps, lo <= r <= hi}.

    Needs lo <= 0 <= hi (true for lo = -x, hi = 1 - x with x in the box); None means unbounded.
    KKT: r_i = sign(v_i) min(max(|v_i| - lam, 0), u_i) with u_i = hi_i if v_i > 0 else -lo_i, and lam >= 0
    the root of g(lam) = sum_i min(max(|v_i| - lam, 0), u_i) = eps (lam = 0 if g(0) <= eps). g is
    piecewise linear and non-increasing with breakpoints |v_i| - u_i (slope -1 more) and |v_i| (slope +1
    more); we sort the 2d breakpoints, evaluate g on them by cumulative sums and interpolate on the
    segment that crosses eps: O(d log d) per row, exact up to rounding.
    """
    n, d = v.shape
    eps_t = torch.as_tensor(eps, dtype=v.dtype, device=v.device).expand(n) if not torch.is_tensor(eps) \
        else eps.to(v).expand(n)
    a = v.abs()
    if lo is None and hi is None:
        u = torch.full_like(a, float("inf"))
    else:
        lo = torch.full_like(v, -float("inf")) if lo is None else lo
        hi = torch.full_like(v, float("inf")) if hi is None else hi
        u = torch.where(v > 0, hi, -lo).clamp_min(0)
    # g(0): the box-clipped vector; rows already inside the l1 ball need lam = 0.
    g0 = torch.minimum(a, u).sum(1)
    # Breakpoints: a_i - u_i (enter the active set; -inf when unbounded, i.e. active from the start) and a_i.
    enter = a - u
    bps = torch.cat([enter, a], 1)
    dslope = torch.cat([-torch.ones_like(a), torch.ones_like(a)], 1)
    finite = torch.isfinite(bps)
    # Coordinates with u = inf are active for every lam < a_i: start the slope with them.
    slope0 = -(~torch.isfinite(enter)).sum(1, keepdim=True).to(v.dtype)
    bps = torch.where(finite, bps, torch.full_like(bps, -float("inf")))
    dslope = torch.where(finite, dslope, torch.zeros_like(dslope))
    bps_s, order = torch.sort(bps, dim=1)
    dslope_s = torch.gather(dslope, 1, order)
    # Slope of g on (bp_k, bp_{k+1}) is slope0 + cumsum(dslope)_k. The -inf breakpoints (unbounded
    # coordinates) sort first with zero slope change; they are placed at 0, where g is evaluated directly.
    slope_after = slope0 + torch.cumsum(dslope_s, 1)
    b0 = torch.where(torch.isfinite(bps_s), bps_s, torch.zeros_like(bps_s))
    first = b0[:, :1]
    g_first = torch.minimum((a - first).clamp_min(0), u).sum(1, keepdim=True)
    gaps = (b0[:, 1:] - b0[:, :-1]).clamp_min(0)
    g_at = torch.cat([g_first, g_first + torch.cumsum(slope_after[:, :-1] * gaps, 1)], 1)
    # First breakpoint where g <= eps (g reaches 0 at the last breakpoint max a_i, so one exists if eps>=0).
    below = g_at <= eps_t[:, None]
    k = torch.argmax(below.to(torch.int8), dim=1)
    k_prev = (k - 1).clamp_min(0)
    gkp = g_at.gather(1, k_prev[:, None])[:, 0]
    bk, bkp = b0.gather(1, k[:, None])[:, 0], b0.gather(1, k_prev[:, None])[:, 0]
    sl = slope_after.gather(1, k_prev[:, None])[:, 0]
    # On (bkp, bk) g is linear with slope sl: lam = bkp + (gkp - eps) / (-sl).
    lam_interp = torch.where(sl < 0, bkp + (gkp - eps_t) / (-sl).clamp_min(1e-30), bk)
    # k == 0: eps >= g(first breakpoint); lam lies left of it where the slope is slope0 (< 0 if unbounded).
    s0 = slope0[:, 0]
    lam_left = torch.where(s0 < 0, first[:, 0] + (g_first[:, 0] - eps_t) / (-s0).clamp_min(1e-30),
                           first[:, 0])
    lam = torch.where(k == 0, lam_left, lam_interp)
    lam = torch.where(g0 <= eps_t, torch.zeros_like(lam), lam.clamp_min(0))
    r = torch.sign(v) * torch.minimum((a - lam[:, None]).clamp_min(0), u)
    # Rounding can leave |r|_1 a hair above eps: shrink (stays in the box since 0 is inside it).
    norm = r.abs().sum(1)
    scale = torch.where(norm > eps_t, eps_t / norm.clamp_min(1e-30), torch.ones_like(norm))
    return r * scale[:, None]


def project_l1(v: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Exact projection of each row of ``v`` [n, d] onto the l1 ball of radius eps (no box)."""
    return project_l1_box(v, eps, None, None)


def project_l2_box(v: torch.Tensor, eps: float | torch.Tensor, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None) -> torch.Tensor:
    """Exact Euclidean projection of each row of ``v`` [n, d] onto {r : |r|_2 <= eps, lo <= r <= hi}, lo <= 0 <= hi.

    KKT: r = clip(t v, lo, hi) with t = 1/(1 + mu) in (0, 1], t = 1 if clip(v) is inside the ball. The norm
    f(t) = |clip(t v)|^2 is non-decreasing and piecewise quadratic: with S the coordinates clipped at t,
    f = C_S + t^2 A_S (C_S: their clipped values squared, A_S: the other v_i^2). We find the root of
    f(t) = eps^2 by an active-set iteration: from t = eps/|v| (a lower bound, clipping only shrinks), solve
    C_S + t'^2 A_S = eps^2 for the set S = S(t). Since C_S + s^2 A_S >= f(s) for s >= t, each t' is again a lower
    bound of the root, t' >= t and S only grows; once S(t') = S(t), t' is the root exactly. Each pass is O(d)
    elementwise work; a few passes (typically 2 to 5 on images) replace the O(d log d) sort of the breakpoint
    method, and at most d + 1 are needed. Without a box this is v * min(1, eps/|v|).
    """
    n = v.shape[0]
    eps_t = torch.as_tensor(eps, dtype=v.dtype, device=v.device).expand(n) if not torch.is_tensor(eps) \
        else eps.to(v).expand(n)
    if lo is None and hi is None:
        norm = v.norm(dim=1)
        return v * torch.clamp(eps_t / norm.clamp_min(1e-30), max=1.0)[:, None]
    lo = torch.full_like(v, -float("inf")) if lo is None else lo
    hi = torch.full_like(v, float("inf")) if hi is None else hi
    with torch.no_grad():
        e2 = eps_t * eps_t
        r = torch.clamp(v, min=lo, max=hi)
        todo = (r * r).sum(1) > e2           # clip(v) outside the ball: the ball constraint is active
        t = torch.where(todo, (eps_t / v.norm(dim=1).clamp_min(1e-30)).clamp(max=1.0), torch.ones_like(eps_t))
        v2 = v * v
        n_clipped = torch.full((n,), -1, dtype=torch.long, device=v.device)
        for _ in range(v.shape[1] + 1):
            if not bool(todo.any()):
                break
            tv = t[:, None] * v
            r = torch.clamp(tv, min=lo, max=hi)
            cl = r != tv
            count = cl.sum(1)
            todo = todo & (count != n_clipped)  # S(t) = S(previous t): t is the root
            n_clipped = count
            A = torch.where(cl, torch.zeros_like(v2), v2).sum(1)
            C = (r * r).sum(1) - t * t * A
            t_new = torch.sqrt((e2 - C).clamp_min(0) / A.clamp_min(1e-300)).clamp(max=1.0)
            t = torch.where(todo, torch.maximum(t, t_new), t)
    r = torch.clamp(t[:, None] * v, min=lo, max=hi)
    norm = r.norm(dim=1)
    # rounding can leave |r| a few ulp above eps
    return r * torch.where(norm > eps_t, eps_t / norm.clamp_min(1e-30), torch.ones_like(norm))[:, None]


# ---------------------------------------------------------------------------------------------------
# The threats
# ---------------------------------------------------------------------------------------------------
