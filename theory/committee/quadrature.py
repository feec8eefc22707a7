"""Quadrature rules of the drift's K-dimensional Gaussian average E[f(zeta)], zeta ~ N(0, I_K): the product
Gauss-Hermite grid ("gh:n"), Sobol quasi-Monte Carlo ("qmc:m"), randomised QMC with a standard error
("rqmc:m:r"), the line rule ("line:n", split where sigma - tau changes sign) and, without the attack, the closed
form ("exact", :mod:`theory.committee.closed_form`); the default per K and attack.

Pure mathematics: numpy and scipy, no randomness (the scramblings have fixed seeds).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri, roots_hermite

from ..linear.params import ParameterError
from .local_fields import TWO_OVER_SQRT_PI, output, sqrt_gram
from .params import CommitteeParams, Mixture, State

__all__ = ["Rule", "quadrature_nodes", "qmc_nodes", "rqmc_nodes", "drift_rule", "drift_nodes", "default_rule",
           "rule_for", "may_jump", "rule_parts", "line_panels", "finer_rule", "line_geometry", "line_nodes", "line_nodes_on", "vline_nodes", "DEFAULT_RULES",
           "DEFAULT_RULE_LARGE_K", "DEFAULT_RULE_JUMP", "DEFAULT_RULE_JUMP_PGD", "RQMC_SEED", "GRID_NODES",
           "QMC_LOG2", "QMC_LOG2_DEFAULT"]

#: Default rules of the drift's K-dimensional Gaussian average (:func:`default_rule`), without and with the
#: attack.  Without it every average is a sum of Gaussian averages of products of erf and erf' with closed forms
#: (:mod:`theory.committee.closed_form`): the rule "exact", whose error is rounding (a bound of 1e-14 relative to
#: the terms), for every K.  (Before, Gauss-Hermite product rules: on the xor table case (K = 4, eps 0) at alpha 0
#: the largest |error| of the drift of gh:12 / 16 / 24 / 32 / 40 / 48 against the closed form is 3.0e-5 / 2.8e-6 /
#: 1.5e-7 / 5.1e-9 / 1.8e-10 / 5.1e-12, max |drift| 8.4e-3: geometric decay, the factors erf'(lambda_k)
#: erf'(lambda_l) being narrower than the Gaussian weight.)  With the attack the attack direction g/|g| switches between units where
#: their erf'(lambda~_k) ~ exp(-lambda~_k^2) cross, a
#: transition whose width shrinks like 1/|lambda| in the tails, and where sigma - tau changes sign (sum |v_k| > 1)
#: the direction flips: the integrand jumps.  Product rules then converge algebraically and for K >= 3 the
#: average is randomised quasi-Monte Carlo: 8 fixed scramblings (seeds RQMC_SEED + j) of 2^m Sobol points with
#: their mirror images, whose spread gives the standard error.  At K = 2 the product rule still converges faster
#: than algebraically with the attack (talk table case, max |error| at alpha 0 / 200: gh:128 6e-8 / 1.1e-7, gh:256
#: 1.4e-9 / 4e-10, gh:512 3e-12 / 1e-13, against gh:2048), so 256 nodes per dimension give a relative error below
#: 1e-6 there.  Measured errors: docs/committee.md (Quadrature).
DEFAULT_RULES = {
    1: ("exact", "gh:96"),
    2: ("exact", "gh:256"),  # with a jump (sum |v| > 1 or eta_v > 0): DEFAULT_RULE_JUMP
    3: ("exact", "rqmc:10:8"),
    4: ("exact", "rqmc:10:8"),
}
DEFAULT_RULE_LARGE_K = ("exact", "rqmc:10:8")  # K >= 5
#: with the attack and sum_k |v_k| > 1 (or a learning second layer) sigma - tau can vanish and the integrand jumps
#: where it does (the attack direction flips).  A fixed rule then gives a drift with small jumps as nodes cross
#: the surface (thousands of solver steps) and a product rule's change against a finer one misjudges its error
#: (measured at K = 2: 2e-3 off with a stated 4e-4).  For FGSM the default is then the line rule (line_nodes:
#: the jump located on each line and integrated piecewise), whose drift is continuous in the state; for PGD at
#: K = 2 the randomised rule, whose standard error stays honest.  At K = 4 the lines carry 6 inner panels (half the
#: default): on the large-learning-rate xor case the change against 48 panels is 9e-5 / 1.3e-5 at alpha 0 / 50,
#: far below the outer rule's error (2e-3 / 3e-3), and the error estimate refines both (finer_rule).  At K = 2 the
#: transversal rule vline:6 (vline_nodes: lines along v, panels graded toward the turns of the attack direction):
#: on the large-learning-rate case at K = 2 its trajectory lies within 2e-7 of vline:10 at rtol 1e-9, where line:32's
#: lies 6e-4 from it, for 2.5 times the CPU (3.8 s to alpha 50).
DEFAULT_RULE_JUMP = {2: "vline:6", 3: "line:10", 4: "line:6:6"}  # K >= 5: the randomised rule
DEFAULT_RULE_JUMP_PGD = "rqmc:11:8"
RQMC_SEED = 20261204
DETERMINISTIC_ERROR_FACTOR = 2.0  # drift_error of a deterministic rule: this times the change against a finer one
#: Gauss-Hermite nodes per dimension of the former defaults (kept for the tests of the product rule).
GRID_NODES = {1: 96, 2: 28}
QMC_LOG2 = {3: 13, 4: 13}
QMC_LOG2_DEFAULT = 14  # K >= 5
_PRUNE = 1e-14  # product-grid nodes with weight below this (relative to the total) are dropped


@lru_cache(maxsize=32)
def quadrature_nodes(K: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal product Gauss-Hermite grid in K dimensions: nodes (M, K) and weights (M,) summing
    to 1; nodes with relative weight below 1e-14 are dropped (their total weight is below 1e-12)."""
    t, w = roots_hermite(n)
    t, w = t * math.sqrt(2.0), w / math.sqrt(math.pi)
    grids = np.meshgrid(*([t] * K), indexing="ij")
    wgrids = np.meshgrid(*([w] * K), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    keep = weights > _PRUNE * weights.max()
    nodes, weights = nodes[keep], weights[keep]
    return np.ascontiguousarray(nodes), weights / weights.sum()


@lru_cache(maxsize=32)
def qmc_nodes(K: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic quasi-Monte Carlo rule for E[f(zeta)], zeta ~ N(0, I_K): the first 2^m points of the
    unscrambled Sobol sequence (scipy.stats.qmc) without the origin, mapped by the normal quantile, and their
    mirror images; 2 (2^m - 1) nodes (M, K), equal weights summing to 1."""
    from scipy.stats import qmc  # imported here: scipy.stats takes a second to import

    u = qmc.Sobol(K, scramble=False).random_base2(m)[1:]
    z = ndtri(u)
    nodes = np.concatenate([z, -z])
    return np.ascontiguousarray(nodes), np.full(len(nodes), 1.0 / len(nodes))


@lru_cache(maxsize=32)
def rqmc_nodes(K: int, m: int, r: int, seed: int = RQMC_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Randomised quasi-Monte Carlo for E[f(zeta)], zeta ~ N(0, I_K): r blocks, block j the 2^m points of a Sobol
    set scrambled with seed ``seed + j`` (scipy.stats.qmc, Owen scrambling), mapped by the normal quantile, and
    their mirror images.  Each block is an unbiased estimate; nodes (r 2^(m+1), K) in block order, weights 1/M."""
    from scipy.stats import qmc

    blocks = []
    for j in range(r):
        z = ndtri(qmc.Sobol(K, scramble=True, seed=seed + j).random_base2(m))
        blocks.append(np.concatenate([z, -z]))
    nodes = np.concatenate(blocks)
    return np.ascontiguousarray(nodes), np.full(len(nodes), 1.0 / len(nodes))


class Rule(NamedTuple):
    """A rule for E[f(zeta)], zeta ~ N(0, I_K): nodes (M, K) and weights (M,) in ``blocks`` consecutive blocks of
    equal size, each block's weights summing to 1/blocks.  With blocks > 1 every block is an independent
    randomised estimate (their spread is the rule's standard error)."""

    name: str
    nodes: np.ndarray
    weights: np.ndarray
    blocks: int


def may_jump(p: CommitteeParams) -> bool:
    """Whether the drift's integrand can jump: an attack, and sigma - tau can vanish (sum |v_k| > 1, or v learns)."""
    return p.eps > 0 and (p.eta_v > 0 or float(np.sum(np.abs(p.v0))) > 1.0 + 1e-12)


def default_rule(K: int, eps: float, jump: bool = False, steps: int = 1) -> str:
    """The name of the default rule of the drift: DEFAULT_RULES (the second entry when the attack is on); where the
    integrand can jump, the line rule DEFAULT_RULE_JUMP for FGSM (K <= 4) and DEFAULT_RULE_JUMP_PGD for K = 2 with
    PGD (the line rule splits only at the clean sign change, not at those of the later steps)."""
    if jump and eps > 0:
        if steps == 1 and K in DEFAULT_RULE_JUMP:
            return DEFAULT_RULE_JUMP[K]
        if K == 2:
            return DEFAULT_RULE_JUMP_PGD
    return DEFAULT_RULES.get(K, DEFAULT_RULE_LARGE_K)[1 if eps > 0 else 0]


def rule_for(p: CommitteeParams, rule: int | str | None = None) -> "Rule":
    """:func:`drift_rule` for the parameters (the default depends on K, the attack and :func:`may_jump`)."""
    return drift_rule(p.K, default_rule(p.K, p.eps, may_jump(p), p.pgd_steps) if rule is None else rule, p.eps)


def drift_rule(K: int, rule: int | str | None = None, eps: float = 1.0) -> Rule:
    """Parse a rule: ``None`` the default (:func:`default_rule`); an integer n or ``"gh:n"`` the product
    Gauss-Hermite grid with n nodes per dimension; ``"qmc:m"`` the deterministic Sobol rule with 2^m points and
    mirrors; ``"rqmc:m:r"`` r scrambled Sobol blocks of 2^m points and mirrors (:func:`rqmc_nodes`); ``"exact"``
    the closed form without the attack (no nodes; :mod:`theory.committee.closed_form`)."""
    if rule is None:
        rule = default_rule(K, eps)
    if rule == "exact":
        return Rule("exact", np.zeros((0, K)), np.zeros(0), 1)
    if not isinstance(rule, str):
        if isinstance(rule, bool) or int(rule) != rule or int(rule) < 1:
            raise ParameterError(f"quadrature rule must be an integer >= 1, 'gh:N', 'qmc:M' or 'rqmc:M:R', got {rule!r}")
        rule = f"gh:{int(rule)}"
    kind, *nums = rule.split(":")
    sizes = {"gh": (1, 1, 4096), "qmc": (1, 1, 24), "rqmc": (2, 1, 24), "line": (1, 1, 512), "vline": (1, 2, 12)}
    counts = (1, 2) if kind == "line" else (sizes.get(kind, (0,))[0],)
    if kind not in sizes or len(nums) not in counts or not all(x.isdigit() and int(x) >= 1 for x in nums) \
            or int(nums[0]) > sizes[kind][2] or (kind == "rqmc" and not 2 <= int(nums[1]) <= 64) \
            or (kind == "line" and len(nums) == 2 and int(nums[1]) > 256) \
            or (kind == "vline" and int(nums[0]) < 2):
        raise ParameterError(f"quadrature rule must be 'exact' (eps = 0), 'gh:N' (1 <= N <= 4096), 'qmc:M' or "
                             f"'rqmc:M:R' (1 <= M <= 24, 2 <= R <= 64) or 'line:N' or 'line:N:P' (1 <= N <= 512, "
                             f"1 <= P <= 256 panels per line) or 'vline:M' (2 <= M <= 12), got {rule!r}")
    if kind == "vline":  # every node is built per state and cluster (vline_nodes)
        return Rule(rule, np.zeros((0, K)), np.zeros(0), 1)
    if kind == "line":  # the outer Gauss-Hermite grid over K - 1 coordinates; the lines are built per state
        if K == 1:
            return Rule(rule, np.zeros((1, 0)), np.ones(1), 1)
        return Rule(rule, *quadrature_nodes(K - 1, int(nums[0])), 1)
    if kind == "gh":
        return Rule(rule, *quadrature_nodes(K, int(nums[0])), 1)
    if kind == "qmc":
        return Rule(rule, *qmc_nodes(K, int(nums[0])), 1)
    return Rule(rule, *rqmc_nodes(K, int(nums[0]), int(nums[1])), int(nums[1]))


def drift_nodes(K: int, n: int | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of :func:`drift_rule` (the default: the rule with the attack)."""
    r = drift_rule(K, n)
    return r.nodes, r.weights


def line_panels(name: str) -> int:
    """The inner panels of a line rule: P of "line:N:P", LINE_PANELS for "line:N"."""
    parts = name.split(":")
    return int(parts[2]) if len(parts) > 2 else LINE_PANELS


def finer_rule(name: str) -> str:
    """The rule of higher order against which a deterministic rule's error is estimated: "gh:(n + n/2)",
    "qmc:(m + 1)", and for a line rule both parts refined, "line:(n + n/2):(2P)" (outer nodes and inner panels,
    so that the estimate covers the error along the lines too)."""
    kind, *nums = name.split(":")
    n = int(nums[0])
    if kind == "gh":
        return f"gh:{n + max(2, n // 2)}"
    if kind == "line":
        return f"line:{n + max(2, n // 2)}:{2 * line_panels(name)}"
    if kind == "qmc":
        return f"qmc:{n + 1}"
    if kind == "vline":
        return f"vline:{n + 2}"
    raise ParameterError(f"no finer deterministic rule for {name!r}")


#: the line rule's inner rule: Gauss-Legendre with LINE_GL nodes on LINE_PANELS equal panels of [-LINE_T, LINE_T]
#: (normal mass outside 1e-15), each panel split at the sign changes of sigma - tau found on LINE_GRID points
#: and located by LINE_NEWTON safeguarded Newton steps from the secant point
LINE_T, LINE_PANELS, LINE_GL, LINE_GRID, LINE_NEWTON = 8.0, 12, 4, 65, 6


def line_geometry(state: State, p: CommitteeParams, rule: Rule, c: int):
    """The lines of cluster c: feet zb (Mo, K) (the outer nodes in the complement of u), direction u (K,) along
    grad sigma at the cluster's mean field (in the coordinates zeta), and lambda = mean + zeta @ Lz."""
    mix = p.mixture()
    Q, R, b, v = state
    K = p.K
    L, _ = sqrt_gram(Q)
    sd = math.sqrt(mix.variances[c])
    mean = mix.means[c] @ R.T - b
    grad = sd * L.T @ (v * np.exp(-mean * mean))
    if not np.linalg.norm(grad) > 1e-12:
        grad = np.eye(K)[0]
    basis = np.linalg.qr(np.column_stack([grad, np.eye(K)]))[0][:, :K]
    return (np.ascontiguousarray(rule.nodes @ basis[:, 1:].T), np.ascontiguousarray(basis[:, 0]),
            np.ascontiguousarray(mean), np.ascontiguousarray(L.T * sd), float(mix.labels[c]))


def line_nodes(state: State, p: CommitteeParams, rule: Rule, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes zeta (M, K) and weights of the line rule for cluster c: lines through the outer Gauss-Hermite nodes
    along the direction u of grad sigma at the cluster's mean field (in the coordinates zeta), on each line a
    piecewise Gauss-Legendre rule split at the points where sigma(lambda) - tau changes sign.  There the attack
    direction g/|g|, g ~ (sigma - tau) v erf'(lambda), flips and the integrand jumps; splitting there makes the
    quadrature exact up to the smooth parts' error and the drift continuous in the state.  (For PGD with s > 1
    the later steps' sign changes are not split.)"""
    zb, zd, mean, Lz, tau = line_geometry(state, p, rule, c)
    return line_nodes_on(zb, zd, mean, Lz, tau, state.v, rule.weights, line_panels(rule.name))


def line_nodes_on(zb, zd, mean, Lz, tau, v, outer_w, panels: int | None = None):
    """:func:`line_nodes` from the geometry of :func:`line_geometry` and the outer weights (``panels`` inner
    panels per line, default LINE_PANELS)."""
    panels = LINE_PANELS if panels is None else int(panels)
    from scipy.special import roots_legendre

    K = zd.size

    def g(z):
        return output(mean + z @ Lz, v) - tau

    tg = np.linspace(-LINE_T, LINE_T, LINE_GRID)
    F = g(zb[:, None, :] + tg[None, :, None] * zd)
    s_pos = F > 0
    mi, ji = np.nonzero(s_pos[:, :-1] != s_pos[:, 1:])
    lo, hi = tg[ji].copy(), tg[ji + 1].copy()
    # each bracket: the secant point, then Newton steps kept inside the bracket (d sigma/dt along the line is
    # sum_k v_k erf'(lambda_k) (sd L zd)_k)
    r = lo + (hi - lo) * F[mi, ji] / (F[mi, ji] - F[mi, ji + 1])
    dl = zd @ Lz
    for _ in range(LINE_NEWTON):
        lam = mean + (zb[mi] + r[:, None] * zd) @ Lz
        f = output(lam, v) - tau
        df = (v * TWO_OVER_SQRT_PI * np.exp(-lam * lam)) @ dl
        step = np.divide(f, df, out=np.zeros_like(f), where=df != 0)
        r = np.clip(r - step, lo, hi)
    lo = hi = r
    Mo = len(zb)
    cnt = np.bincount(mi, minlength=Mo)
    nr = int(cnt.max()) if cnt.size else 0
    edges = np.linspace(-LINE_T, LINE_T, panels + 1)
    pts = np.full((Mo, panels + 1 + nr), np.inf)
    pts[:, :panels + 1] = edges
    if nr:
        order = np.argsort(mi, kind="stable")
        start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        pos = np.arange(len(mi)) - start[mi[order]]
        pts[mi[order], panels + 1 + pos] = 0.5 * (lo + hi)[order]
    pts.sort(axis=1)
    a, bnd = pts[:, :-1], pts[:, 1:]
    ok = np.isfinite(bnd) & (bnd > a)
    a, bnd = np.where(ok, a, 0.0), np.where(ok, bnd, 0.0)
    xg, wg = roots_legendre(LINE_GL)
    half = 0.5 * (bnd - a)
    t = (0.5 * (bnd + a))[..., None] + half[..., None] * xg  # (Mo, I, n)
    w = (half[..., None] * wg) * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) * outer_w[:, None, None]
    w = w * ok[..., None]
    z = zb[:, None, None, :] + t[..., None] * zd
    keep = w.ravel() > 0
    return np.ascontiguousarray(z.reshape(-1, K)[keep]), w.ravel()[keep]


def rule_parts(state: State, p: CommitteeParams, rule: Rule, nodes_fn=None):
    """(mixture, rule) pairs whose averages add up to the drift's: the whole mixture with the rule, or for a
    line rule one cluster at a time with its own nodes (:func:`line_nodes`; ``nodes_fn`` another implementation
    of :func:`line_nodes_on`, e.g. a compiled one)."""
    mix = p.mixture()
    if rule.name.startswith("vline:"):
        return [(Mixture(*(np.ascontiguousarray(a[c:c + 1]) for a in mix)),
                 Rule(rule.name, *vline_nodes(state, p, int(rule.name.split(":")[1]), c), 1))
                for c in range(len(mix.priors))]
    if not rule.name.startswith("line:"):
        return [(mix, rule)]
    parts = []
    for c in range(len(mix.priors)):
        z, w = line_nodes(state, p, rule, c) if nodes_fn is None else nodes_fn(*line_geometry(state, p, rule, c),
                                                                                  state.v, rule.weights,
                                                                                  line_panels(rule.name))
        sub = Mixture(*(np.ascontiguousarray(a[c:c + 1]) for a in mix))
        parts.append((sub, Rule(rule.name, z, w, 1)))
    return parts


#: the transversal line rule "vline:M" (:func:`vline_nodes`): composite Gauss-Legendre with M nodes per panel,
#: outer panels VLINE_WIDTH marginal standard deviations wide over +-VLINE_NSD, inner panels VLINE_WIDTH_IN
#: conditional standard deviations wide over +-VLINE_NSD_IN; nodes of weight below VLINE_WMIN are dropped.  K <= 4:
#: the outer product rule has about ((2 VLINE_NSD / VLINE_WIDTH + 2 VLINE_LEVELS) M)^(K-1) lines in its box.
VLINE_WIDTH, VLINE_NSD, VLINE_WIDTH_IN, VLINE_NSD_IN, VLINE_WMIN, VLINE_MAX_K = 1.0, 7.0, 3.0, 8.0, 1e-15, 4
#: the panels of "vline:M" graded toward the layers where the attack direction turns: VLINE_LEVELS extra edges on
#: each side at VLINE_Q^i panel widths (i = 1 .. VLINE_LEVELS outside, i = 0 .. VLINE_LEVELS - 1 along the lines)
VLINE_LEVELS, VLINE_Q = 3, 0.35
#: the root of sigma - tau on each line: VLINE_BISECT bisection steps (to 16 csd 2^-24, 1e-6 csd), then
#: VLINE_NEWTON Newton steps kept inside the bracket (quadratic: 1e-12, then rounding)
VLINE_BISECT, VLINE_NEWTON = 24, 3


@lru_cache(maxsize=16)
def _legendre(M: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import roots_legendre

    return roots_legendre(M)


def vline_nodes(state: State, p: CommitteeParams, M: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes zeta (n, K) and weights of the transversal line rule "vline:M" for cluster c.

    The lines run along v in the fields lambda: there d sigma/dt = sum_k v_k^2 erf'(lambda_k) > 0, so sigma is
    monotone on every line, sigma - tau has at most one root (found by bisection and made a panel edge) and the
    lines cross the jump surface sigma = tau at an angle bounded away from tangency (cos >= 1/sqrt(K) for |v_k|
    equal).  The feet of the lines are K - 1 linear coordinates of lambda orthogonal to v (one per pair below,
    then an orthonormal completion), integrated by a composite Gauss-Legendre product rule on a box over their
    Gaussian marginal, with panel edges at the multiples of VLINE_WIDTH standard deviations (one at 0); along each
    line a composite Gauss-Legendre rule over the conditional Gaussian.

    The attack direction, along sum_k v_k erf'(lambda_k) w_k, passes from one unit's w_k to another's within a
    layer around the planes lambda_k = +-lambda_l, where erf'(lambda_k) = erf'(lambda_l) (the layer thins like
    1/|lambda|, and turns sharply where v_k w_k and v_l w_l nearly cancel, v_k v_l Q_kl near -1).  For the disjoint
    pairs (k, l) taken in increasing order of v_k v_l Q_kl, the rule grades its panels toward both planes: a plane
    that contains v is a foot coordinate (edges graded around 0), a plane that the lines cross gets edges graded
    around each line's crossing, VLINE_LEVELS on each side at VLINE_Q^i panel widths.  Without the grading the rule
    converges only algebraically; at K = 4 the pairs left out (those not disjoint) still limit it.

    A deterministic reference rule for the drift with the attack and a jump: millions of nodes at K = 4, no bias
    from a tangency or from a Gauss-Hermite grid's reach (accuracy: docs/committee.md, Quadrature).  Needs Q
    positive definite.
    """
    mix = p.mixture()
    Q, R, b, v = state
    K = p.K
    v = np.asarray(v, dtype=float)
    if not 2 <= K <= VLINE_MAX_K:
        raise ParameterError(f"the rule 'vline:M' needs 2 <= K <= {VLINE_MAX_K} (its product rule has "
                             f"(2 M {VLINE_NSD:g} / {VLINE_WIDTH:g})^(K-1) lines), got K = {K}")
    if np.linalg.eigvalsh(0.5 * (Q + Q.T)).min() <= 1e-10 or not np.linalg.norm(v) > 0:
        raise ParameterError("the rule 'vline:M' needs a positive definite Q and v != 0")
    L, P = sqrt_gram(Q)
    sd = math.sqrt(mix.variances[c])
    tau = float(mix.labels[c])
    mu = mix.means[c] @ R.T - b
    # outer coordinates: per disjoint pair (most opposing v_k w_k, v_l w_l first) the normal of the plane
    # lambda_k = +-lambda_l that contains v (else of lambda_k = sign(Q_kl) lambda_l, projected off v), then a completion
    vh = v / np.linalg.norm(v)
    rows, used, pairs = [], set(), []
    for k, l in sorted(((k, l) for k in range(K) for l in range(k + 1, K)), key=lambda kl: v[kl[0]] * v[kl[1]] * Q[kl]):
        if k in used or l in used:
            continue
        # the foot coordinate: the plane lambda_k = +-lambda_l that contains v, else the bulk-crossing one's normal
        # projected off v
        d = next((n for n in (np.eye(K)[k] - np.eye(K)[l], np.eye(K)[k] + np.eye(K)[l]) if abs(n @ vh) < 1e-9),
                 np.eye(K)[k] + math.copysign(1.0, Q[k, l]) * np.eye(K)[l])
        d = d - (d @ vh) * vh
        used |= {k, l}
        pairs.append((k, l))
        if np.linalg.norm(d) > 1e-6 and len(rows) < K - 1:
            rows.append(d / np.linalg.norm(d))
    aligned = len(rows)
    comp = np.linalg.qr(np.column_stack([vh] + rows + list(np.eye(K))))[0][:, :K]
    rows += [comp[:, j] for j in range(1 + aligned, K)]
    T = np.vstack([vh] + rows)  # y = T lambda; T^-1 e_0 is along v since every outer row is orthogonal to v
    Ti = np.linalg.inv(T)
    my = T @ mu
    Cy = sd * sd * (T @ Q @ T.T)
    Coo, Cio = Cy[1:, 1:], Cy[0, 1:]
    beta = np.linalg.solve(Coo, Cio)
    csd = math.sqrt(Cy[0, 0] - Cio @ beta)
    xg, wg = _legendre(M)

    grade = [s * VLINE_Q ** i for i in range(1, VLINE_LEVELS + 1) for s in (-1.0, 1.0)]

    def composite(lo, hi, width, graded):  # panel edges at the multiples of width (one at 0), graded toward 0
        edges = width * np.arange(math.floor(lo / width), math.ceil(hi / width) + 1)
        if graded:
            edges = np.unique(np.concatenate([edges, width * np.asarray(grade)]))
        a, bnd = edges[:-1], edges[1:]
        return (((0.5 * (a + bnd))[:, None] + (0.5 * (bnd - a))[:, None] * xg).ravel(),
                ((0.5 * (bnd - a))[:, None] * wg).ravel())

    axes = [composite(my[j] - VLINE_NSD * math.sqrt(Cy[j, j]), my[j] + VLINE_NSD * math.sqrt(Cy[j, j]),
                      VLINE_WIDTH * math.sqrt(Cy[j, j]), j <= aligned) for j in range(1, K)]
    Yo = np.stack([g.ravel() for g in np.meshgrid(*[a[0] for a in axes], indexing="ij")], axis=1)
    Wo = np.prod(np.stack([g.ravel() for g in np.meshgrid(*[a[1] for a in axes], indexing="ij")], axis=1), axis=1)
    dev = Yo - my[1:]
    Ci = np.linalg.inv(Coo)
    Wo = Wo * np.exp(-0.5 * np.einsum("ni,ij,nj->n", dev, Ci, dev)) / math.sqrt((2 * math.pi) ** (K - 1)
                                                                                 * np.linalg.det(Coo))
    keep = Wo > VLINE_WMIN
    Yo, Wo, dev = Yo[keep], Wo[keep], dev[keep]
    cm = my[0] + dev @ beta
    lo, hi = cm - VLINE_NSD_IN * csd, cm + VLINE_NSD_IN * csd

    lam0, dl = np.column_stack([np.zeros(len(Yo)), Yo]) @ Ti.T, Ti[:, 0]  # lambda(t) = lam0 + t dl on each line

    def g(t):
        return output(lam0 + t[:, None] * dl, v) - tau

    flo, fhi = g(lo), g(hi)
    has = (flo < 0) & (fhi > 0)  # sigma increases along the line
    a, bnd = lo.copy(), hi.copy()
    for _ in range(VLINE_BISECT):  # bisection: the bracket shrinks to 16 csd 2^-VLINE_BISECT
        mid = 0.5 * (a + bnd)
        below = g(mid) < 0
        a, bnd = np.where(below, mid, a), np.where(below, bnd, mid)
    t = 0.5 * (a + bnd)
    for _ in range(VLINE_NEWTON):  # Newton steps, kept in the bracket (d sigma/dt = sum_k v_k erf'(lambda_k) dl_k > 0)
        lam = lam0 + t[:, None] * dl
        slope = (v * TWO_OVER_SQRT_PI * np.exp(-lam * lam)) @ dl
        step = np.divide(output(lam, v) - tau, slope, out=np.zeros_like(t), where=slope > 0)
        t = np.clip(t - step, a, bnd)
    glo, ghi = float(lo.min()), float(hi.max())
    edges = np.linspace(glo, ghi, max(1, int(math.ceil((ghi - glo) / (VLINE_WIDTH_IN * csd)))) + 1)
    root = np.where(has, t, ghi)  # no root: a panel of zero width
    extra = [root[:, None]]
    offsets = np.array([0.0] + [s * VLINE_WIDTH_IN * csd * VLINE_Q ** i for i in range(VLINE_LEVELS)
                                for s in (-1.0, 1.0)])
    for k, l in pairs:
        for sg in (1.0, -1.0):
            rate = dl[k] - sg * dl[l]
            if abs(rate) > 1e-9:
                tc = -(lam0[:, k] - sg * lam0[:, l]) / rate  # where the line crosses lambda_k = sg lambda_l
                extra.append(np.clip(tc[:, None] + offsets, glo, ghi))
    ed = np.sort(np.concatenate([np.broadcast_to(edges, (len(cm), len(edges)))] + extra, axis=1), axis=1)
    ea, eb = ed[:, :-1], ed[:, 1:]
    tn = (0.5 * (ea + eb))[..., None] + (0.5 * (eb - ea))[..., None] * xg
    W = (0.5 * (eb - ea))[..., None] * wg
    tn, W = tn.reshape(len(cm), -1), W.reshape(len(cm), -1)
    W = W * np.exp(-0.5 * ((tn - cm[:, None]) / csd) ** 2) / (math.sqrt(2 * math.pi) * csd) * Wo[:, None]
    sel = W > VLINE_WMIN
    line = np.nonzero(sel)[0]
    lam = lam0[line] + tn[sel][:, None] * dl
    zeta = ((lam - mu) / sd) @ P.T
    return np.ascontiguousarray(zeta), W[sel]
