"""APGD, Auto-PGD (Croce & Hein 2020), for l_inf and l_2, and its l_1 version (Croce & Hein 2021).

Threat: S(x) = {x + r : |r|_p <= eps} ∩ [0, 1]^d, p in {inf, 2, 1}; P_S the exact projection of
:mod:`empirical.threats` (for l_1 onto the intersection of the l_1 ball and the box).

Iteration (per example, eta its step size, checkpoints w_0 = 0 < w_1 < ... of the budget of steps,
p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), w_j = ceil(p_j * steps)):

    z^{k+1} = P_S(x^k + eta^k s(grad L(x^k)))
    x^{k+1} = P_S(x^k + a (z^{k+1} - x^k) + (1 - a)(x^k - x^{k-1})),   a = 0.75 (a = 1 for k = 0)

with s the threat's steepest-ascent direction (sign for l_inf, g/|g|_2 for l_2, and for l_1 the gradient
restricted to the k_s coordinates of largest |g| that can still move inside the box, normalised to unit
l_1 norm, times eps). Our l_1 step keeps the gradient magnitudes on the chosen coordinates instead of their
signs: with equal (sign) increments the exact l_1 projection subtracts the same amount from each active
coordinate, so the iterate can stall on a face of the ball (e.g. on a linear model it never concentrates
on the best vertex); weighting by |g_i| lets the mass move to the largest gradients. At each
checkpoint w_j, eta is halved and the iterate restarts from the best point found if (1) fewer than
rho (w_j - w_{j-1}) of the steps since w_{j-1} increased the loss (rho = 0.75) or (2) neither eta nor
the best loss changed since w_{j-1}. Initial step: eta = 2 eps (l_inf, l_2), eta = 1 (in units of eps, l_1).
For l_1 the sparsity k_s starts at 10% of the coordinates and, whenever eta is halved, is reset to the
number of non-zero coordinates of the best perturbation (at least 1), as Croce & Hein (2021) adapt it to
the sparsity of the best point.

Arguments: ``threat``; ``eps`` (overrides threat.eps); ``steps`` = 100; ``restarts`` = 1;
``loss`` = 'ce' | 'margin' | 'dlr'; ``random_start`` = True; ``rho`` = 0.75; ``momentum`` = 0.75;
``alpha`` initial step size in units of eps (default 2 for l_inf/l_2, 1 for l_1); ``sparsity`` initial
fraction of coordinates for l_1 (0.1). Returns the worst point over steps and restarts.
"""

from __future__ import annotations

import math

import torch

from ..threats import L1Ball, L2Ball, LinfBall
from .base import Attack, Best, check_positive_int, check_step, loss_and_grad

__all__ = ["APGD", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j at which APGD may halve its step size."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = sorted({int(math.ceil(round(q * steps, 9))) for q in p if q <= 1})
    return [v for v in w if 0 < v < steps]


def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class APGD(Attack):
    name = "apgd"

    def __init__(self, threat, eps: float | None = None, steps: int = 100, restarts: int = 1, loss: str = "ce",
                 random_start: bool = True, rho: float = 0.75, momentum: float = 0.75,
                 alpha: float | None = None, sparsity: float = 0.1):
        if not isinstance(threat, (LinfBall, L2Ball, L1Ball)):
            raise ValueError(f"apgd attacks linf, l2 and l1 threats, got {threat!r}")
        if eps is not None:
            threat = threat.replace(eps=float(eps))
        super().__init__(threat, loss)
        self.steps = check_positive_int("steps", steps)
        self.restarts = check_positive_int("restarts", restarts)
        self.random_start = bool(random_start)
        if not (0 < rho <= 1 and 0 < momentum <= 1 and 0 < sparsity <= 1):
            raise ValueError("rho, momentum and sparsity must be in (0, 1]")
        self.rho, self.momentum, self.sparsity = float(rho), float(momentum), float(sparsity)
        default_alpha = 1.0 if isinstance(threat, L1Ball) else 2.0
        self.alpha = check_step("alpha", alpha) if alpha is not None else default_alpha

    def _direction(self, x_adv, grad, k_s):
        t = self.threat
        if isinstance(t, LinfBall):
            return grad.sign()
        if isinstance(t, L2Ball):
            g = grad.reshape(grad.shape[0], -1)
            return (g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)).reshape(grad.shape)
        return t.sparse_direction(x_adv, grad, k=k_s, signed=False) * t.eps  # unit l1 norm, times eps

    def _run(self, model, x, y, generator, best):
        t, n = self.threat, x.shape[0]
        d = x[0].numel()
        x_adv = t.project(t.random_init(x, generator) if self.random_start else x.clone(), x)
        eta = torch.full((n,), self.alpha * (1.0 if isinstance(t, L1Ball) else t.eps), dtype=x.dtype,
                         device=x.device)
        k_s = torch.full((n,), max(1, int(math.ceil(self.sparsity * d))), dtype=torch.long, device=x.device)
        loss, grad, logits = loss_and_grad(model, x_adv, y, self.loss_fn)
        best.update(x_adv, loss, logits.argmax(1) != y)
        loss_best, x_best, grad_best = loss.clone(), x_adv.clone(), grad.clone()
        loss_prev = loss.clone()
        ckpts = set(checkpoints(self.steps))
        last_ckpt, n_success = 0, torch.zeros(n, device=x.device)
        eta_at_ckpt, loss_best_at_ckpt = eta.clone(), loss_best.clone()
        x_prev = x_adv.clone()
        for k in range(self.steps):
            z = t.project(x_adv + _b(eta, x) * self._direction(x_adv, grad, k_s), x)
            a = 1.0 if k == 0 else self.momentum
            x_new = t.project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x)
            x_prev, x_adv = x_adv, x_new
            loss, grad, logits = loss_and_grad(model, x_adv, y, self.loss_fn)
            best.update(x_adv, loss, logits.argmax(1) != y)
            n_success += (loss > loss_prev).to(n_success.dtype)
            loss_prev = loss
            improved = loss > loss_best
            loss_best = torch.where(improved, loss, loss_best)
            x_best = torch.where(_b(improved, x), x_adv, x_best)
            grad_best = torch.where(_b(improved, x), grad, grad_best)
            step_no = k + 1
            if step_no in ckpts:
                cond1 = n_success < self.rho * (step_no - last_ckpt)
                cond2 = (eta_at_ckpt == eta) & (loss_best_at_ckpt == loss_best)
                reduce = cond1 | cond2
                eta_at_ckpt, loss_best_at_ckpt = eta.clone(), loss_best.clone()
                eta = torch.where(reduce, eta / 2, eta)
                x_adv = torch.where(_b(reduce, x), x_best, x_adv)
                x_prev = torch.where(_b(reduce, x), x_best, x_prev)
                grad = torch.where(_b(reduce, x), grad_best, grad)
                if isinstance(t, L1Ball):
                    nnz = ((x_best - x).reshape(n, -1) != 0).sum(1)
                    k_s = torch.where(reduce, nnz.clamp_min(1), k_s)
                n_success.zero_()
                last_ckpt = step_no

    def perturb(self, model, x, y, generator):
        with torch.no_grad():
            logits = model(x)
        best = Best(x, self.loss_fn(logits, y), logits.argmax(1) != y)
        for _ in range(self.restarts):
            self._run(model, x, y, generator, best)
        return best.x
