"""Threat models: the perturbation sets an attacker may use, one small object each, in one registry.

Notation: x in [0, 1]^d a clean image (d = C*H*W), r a perturbation, x' = x + r the perturbed image,
eps the budget, B = [0, 1]^d the pixel box. Every set is intersected with the box.

=================  ==================================================================================
name               set of perturbed images S(x)
=================  ==================================================================================
``linf``           {x + r : |r|_inf <= eps} ∩ B
``l2``             {x + r : |r|_2 <= eps} ∩ B
``l1``             {x + r : |r|_1 <= eps} ∩ B
``rt``             {T_theta(x) : theta = (phi, dx, dy), |phi| <= max_angle deg, |dx|, |dy| <= max_shift px}
``affine:a:b:β``   {x + β r_a + (1 - β) r_b : x + r_a in S_a(x) without box, x + r_b in S_b(x) without box} ∩ B
=================  ==================================================================================

The l_p sets are convex; every ``project`` below is the exact Euclidean projection onto ball ∩ box (the
l_inf case is coordinatewise; the l_2 and l_1 cases solve the KKT conditions, see
:func:`project_l2_box` and :func:`project_l1_box`). Clamping x + r to B keeps r inside any of these
balls (clamping only shrinks each |r_i| towards 0), which is how the affine set is intersected with B.

Budgets default to the literature's (:data:`DEFAULT_BUDGETS`): MNIST l_inf 0.3, l_1 10, l_2 2, rotation
±30° and translation ±3 px (Tramer & Boneh 2019; Maini et al. 2020); CIFAR-10 l_inf 8/255, l_1 12, l_2 0.5.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .projections import flatten_batch, project_l1, project_l1_box, project_l2_box
from .utils import rand_like, randn_like

__all__ = [
    "LpThreat", "LinfBall", "L2Ball", "L1Ball", "RotationTranslation", "AffineCombination", "DEFAULT_BUDGETS",
    "THREAT_MODELS", "THREATS", "BUDGET_TABLE_OF", "budget_table", "register_threat", "get_threat", "make_threats", "project_l1_box", "project_l2_box",
    "project_l1", "rotate_translate",
]

DEFAULT_BUDGETS = {
    "mnist": {"linf": 0.3, "l1": 10.0, "l2": 2.0, "rt": (30.0, 3)},
    "fashion_mnist": {"linf": 0.1, "l1": 10.0, "l2": 2.0, "rt": (30.0, 3)},
    "cifar10": {"linf": 8 / 255, "l1": 12.0, "l2": 0.5, "rt": (30.0, 3)},
}


@dataclass(frozen=True)
class LpThreat:
    """Interface of an l_p-type threat (``rt`` has ``apply`` instead of ``step``/``project``).

    ``random_init(x, generator)`` a random point of S(x); ``step(x_adv, grad, step_size)`` the steepest
    ascent step of length ``step_size`` in the threat's norm (not projected); ``project(x_adv, x)`` the
    nearest point of S(x); ``norm(r)`` the threat's norm per example; ``contains(x_adv, x)`` membership.
    Tensors are [n, C, H, W]; ``x`` in the box.
    """

    name = "threat"
    #: Attacked by gradient steps (an attack's step count and step size apply); False: by search.
    gradient_based = True
    eps: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")

    @classmethod
    def from_budget(cls, eps, **kwargs) -> "LpThreat":
        """The threat with budget ``eps`` (a number)."""
        return cls(eps=float(eps), **kwargs)

    def scaled(self, factor: float) -> "LpThreat":
        """The same threat with its budget times ``factor`` (budget warm-up)."""
        return self.replace(eps=float(self.eps) * factor)

    def replace(self, **changes) -> "LpThreat":
        return dataclasses.replace(self, **changes)

    def norm(self, r: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def project_delta(self, r, lo=None, hi=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        r = self.project_delta(flatten_batch(x_adv - x), flatten_batch(-x), flatten_batch(1 - x))
        return (x + r.reshape(x.shape)).clamp(0, 1)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
        in_box = (flatten_batch(x_adv) >= 0).all(1) & (flatten_batch(x_adv) <= 1).all(1)
        return in_box & (self.norm(x_adv - x) <= self.eps * (1 + rtol) + 1e-7)

    def random_delta(self, x: torch.Tensor, generator=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def random_init(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return (x + self.random_delta(x, generator)).clamp(0, 1)


@dataclass(frozen=True)
class LinfBall(LpThreat):
    """S(x) = {x + r : |r|_inf <= eps} ∩ [0, 1]^d. Step: x' + alpha sign(g). Projection coordinatewise (exact)."""

    name = "linf"
    eps: float = 0.3

    def norm(self, r):
        return flatten_batch(r).abs().amax(1)

    def project_delta(self, r, lo=None, hi=None):
        r = r.clamp(-self.eps, self.eps)
        if lo is not None:
            r = torch.maximum(torch.minimum(r, hi), lo)
        return r

    def project(self, x_adv, x):
        # the l_inf ball and the box are both boxes: their intersection's projection is one coordinatewise clip
        return torch.minimum(torch.maximum(x_adv, x - self.eps), x + self.eps).clamp_(0, 1)

    def step(self, x_adv, grad, step_size):
        return x_adv + step_size * grad.sign()

    def random_delta(self, x, generator=None):
        return (2 * rand_like(x, generator) - 1) * self.eps


@dataclass(frozen=True)
class L2Ball(LpThreat):
    """S(x) = {x + r : |r|_2 <= eps} ∩ [0, 1]^d. Step: x' + alpha g/|g|_2. Projection: :func:`project_l2_box`."""

    name = "l2"
    eps: float = 2.0

    def norm(self, r):
        return flatten_batch(r).norm(dim=1)

    def project_delta(self, r, lo=None, hi=None):
        return project_l2_box(r, self.eps, lo, hi)

    def step(self, x_adv, grad, step_size):
        g = flatten_batch(grad)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return x_adv + step_size * g.reshape(grad.shape)

    def random_delta(self, x, generator=None):
        # Uniform in the ball: Gaussian direction, radius eps * U^(1/d).
        z = flatten_batch(randn_like(x, generator))
        u = rand_like(x[:, :1, :1, :1] if x.dim() == 4 else x[:, :1], generator).reshape(-1)
        radius = self.eps * u ** (1.0 / z.shape[1])
        return (z / z.norm(dim=1, keepdim=True).clamp_min(1e-12) * radius[:, None]).reshape(x.shape)


@dataclass(frozen=True)
class L1Ball(LpThreat):
    """S(x) = {x + r : |r|_1 <= eps} ∩ [0, 1]^d. Projection: :func:`project_l1_box` (exact).

    Step (SLIDE, Tramer & Boneh 2019): e_i = sign(g_i) on the coordinates whose |g_i| is at or above the
    q-th percentile of |g| among the coordinates that can still move (not at a box face with g pushing
    outwards), 0 elsewhere; x' + alpha e / |e|_1. ``q`` in [0, 100): q = 99 moves the top 1%.
    """

    name = "l1"
    eps: float = 10.0
    q: float = 99.0

    def __post_init__(self):
        super().__post_init__()
        if not (0 <= self.q < 100):
            raise ValueError(f"q must be a percentile in [0, 100), got {self.q!r}")

    def norm(self, r):
        return flatten_batch(r).abs().sum(1)

    def project_delta(self, r, lo=None, hi=None):
        return project_l1_box(r, self.eps, lo, hi)

    def sparse_direction(self, x_adv, grad, k: torch.Tensor | int | None = None, box: bool = True,
                         signed: bool = True, face_tol: float = 0.0):
        """sign(g) (``signed``) or g itself on the top-k coordinates by |g| (default k = ceil((1 - q/100) d)),
        normalised to unit l1 norm ([n, ...]). With ``box``, coordinates of ``x_adv`` at a box face (within
        ``face_tol``: x + (1 - x) can round to 1 - 1e-16) whose gradient pushes outwards cannot move and are left
        out."""
        g = flatten_batch(grad)
        mag = g.abs()
        if box:
            xa = flatten_batch(x_adv)
            movable = ~(((xa <= face_tol) & (g < 0)) | ((xa >= 1 - face_tol) & (g > 0)))
            mag = torch.where(movable, mag, torch.zeros_like(mag))
        d = g.shape[1]
        if k is None:
            k = max(1, int(math.ceil((1 - self.q / 100.0) * d)))
        k_t = torch.as_tensor(k, device=g.device).expand(g.shape[0]).clamp(1, d)
        kmax = int(k_t.max())
        top, _ = torch.topk(mag, kmax, dim=1)
        thresh = top.gather(1, (k_t - 1)[:, None])
        e = torch.where((mag >= thresh) & (mag > 0), g.sign() if signed else g, torch.zeros_like(g))
        e = e / e.abs().sum(1, keepdim=True).clamp_min(1e-30)
        return e.reshape(grad.shape)

    def step(self, x_adv, grad, step_size, box: bool = True):
        return x_adv + step_size * self.sparse_direction(x_adv, grad, box=box)

    def random_delta(self, x, generator=None):
        # Uniform in the l1 ball: Laplace direction (|z| normalised by a Dirichlet/exponential draw), radius
        # eps * U^(1/d).
        e = -torch.log(flatten_batch(rand_like(x, generator)).clamp_min(1e-12))
        s = torch.sign(flatten_batch(rand_like(x, generator)) - 0.5)
        u = rand_like(x[:, :1, :1, :1] if x.dim() == 4 else x[:, :1], generator).reshape(-1)
        radius = self.eps * u ** (1.0 / e.shape[1])
        return (s * e / e.sum(1, keepdim=True) * radius[:, None]).reshape(x.shape)


def rotate_translate(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """T_theta(x): rotate each image by phi degrees (counter-clockwise as displayed, about the centre) and
    shift it by (dx, dy) pixels (right, down), bilinear interpolation, zeros outside. ``theta`` [n, 3] =
    (phi, dx, dy). Uses ``affine_grid``/``grid_sample`` (align_corners=False: pixel centres at
    (2i + 1)/W - 1, so a multiple of 90° maps pixel centres onto pixel centres)."""
    n, _, h, w = x.shape
    theta = theta.to(device=x.device, dtype=torch.float64)
    phi = torch.deg2rad(theta[:, 0])
    c, s = torch.cos(phi), torch.sin(phi)
    # cos(90°) is 6e-17 in floating point; snap such values to 0 so quarter turns are exact permutations.
    c = torch.where(c.abs() < 1e-12, torch.zeros_like(c), c)
    s = torch.where(s.abs() < 1e-12, torch.zeros_like(s), s)
    # Output pixel p samples the input at A p + t (normalised coords, y pointing down).
    # Counter-clockwise rotation on screen by phi: sample at R(phi)^T-like map below (y down flips the sign).
    tx = -2.0 * theta[:, 1] / w
    ty = -2.0 * theta[:, 2] / h
    A = torch.stack([torch.stack([c, -s * h / w, c * tx - s * ty * h / w], 1),
                     torch.stack([s * w / h, c, s * tx * w / h + c * ty], 1)], 1)
    grid = F.affine_grid(A.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class RotationTranslation:
    """S(x) = {T_theta(x) : theta = (phi, dx, dy), |phi| <= max_angle (degrees), |dx|, |dy| <= max_shift (pixels)}.

    T_theta is :func:`rotate_translate`. Not convex in pixel space; attacked by grid search or worst-of-k
    random draws of theta (Engstrom et al. 2019), not by gradients.
    """

    name = "rt"
    gradient_based = False
    max_angle: float = 30.0
    max_shift: float = 3.0

    def __post_init__(self):
        for field in ("max_angle", "max_shift"):
            v = getattr(self, field)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{field} must be a finite number >= 0, got {v!r}")

    @property
    def eps(self) -> tuple[float, float]:
        return (self.max_angle, self.max_shift)

    @classmethod
    def from_budget(cls, eps, **kwargs) -> "RotationTranslation":
        """The threat with budget ``eps`` = (max_angle, max_shift)."""
        angle, shift = eps
        return cls(max_angle=float(angle), max_shift=float(shift), **kwargs)

    def scaled(self, factor: float) -> "RotationTranslation":
        """Itself: budget warm-up scales norm budgets only; a smaller rotation set is not an easier start."""
        return self

    def replace(self, **changes) -> "RotationTranslation":
        return dataclasses.replace(self, **changes)

    def apply(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return rotate_translate(x, theta)

    def bounds(self) -> torch.Tensor:
        return torch.tensor([self.max_angle, self.max_shift, self.max_shift], dtype=torch.float64)

    def random_params(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """theta [n, 3] uniform in the box of parameters (CPU, float64)."""
        dev = generator.device if generator is not None else "cpu"
        u = torch.rand((n, 3), generator=generator, device=dev, dtype=torch.float64).cpu()
        return (2 * u - 1) * self.bounds()

    def grid(self, n_angles: int = 31, n_shifts: int = 7) -> torch.Tensor:
        """All theta on a regular grid [n_angles * n_shifts**2, 3] (ends included), identity first."""
        angles = torch.linspace(-self.max_angle, self.max_angle, n_angles, dtype=torch.float64)
        shifts = torch.linspace(-self.max_shift, self.max_shift, n_shifts, dtype=torch.float64)
        g = torch.cartesian_prod(angles, shifts, shifts)
        ident = (g.abs().sum(1) == 0)
        return torch.cat([torch.zeros(1, 3, dtype=torch.float64), g[~ident]]) if ident.any() else g

    def random_init(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.random_params(x.shape[0], generator))

    def contains_params(self, theta: torch.Tensor) -> torch.Tensor:
        return (theta.abs() <= self.bounds().to(theta) * (1 + 1e-9)).all(1)


@dataclass(frozen=True)
class AffineCombination:
    """S(x) = {x + beta r_a + (1 - beta) r_b : r_a in R_a(x), r_b in R_b(x)} ∩ [0, 1]^d, beta in [0, 1].

    For an l_p threat R(x) = {r : |r|_p <= eps} (no box on the parts; the sum is clamped to the box, which
    keeps it in the set); for ``rt``, R(x) = {T_theta(x) - x : theta allowed} (Tramer & Boneh 2019's affine
    attacks, which interpolate between two perturbation types).
    """

    a: object
    b: object
    beta: float = 0.5

    def __post_init__(self):
        if not (0 <= self.beta <= 1):
            raise ValueError(f"beta must be in [0, 1], got {self.beta!r}")
        if isinstance(self.b, RotationTranslation):
            raise ValueError("put the rotation-translation threat first: affine:rt:<lp>")
        if isinstance(self.a, AffineCombination) or isinstance(self.b, AffineCombination):
            raise ValueError("affine combinations of affine combinations are not supported")

    @property
    def name(self) -> str:
        return f"affine:{self.a.name}:{self.b.name}:{self.beta:g}"

    @property
    def eps(self):
        return (self.a.eps, self.b.eps)

    def replace(self, **changes) -> "AffineCombination":
        return dataclasses.replace(self, **changes)

    def combine(self, x: torch.Tensor, r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
        return (x + self.beta * r_a + (1 - self.beta) * r_b).clamp(0, 1)


#: The registry: name -> class; ``affine:<a>:<b>[:beta]`` combines two of them (:class:`AffineCombination`).
THREAT_MODELS: dict[str, type] = {"linf": LinfBall, "l2": L2Ball, "l1": L1Ball, "rt": RotationTranslation}
THREATS = (*THREAT_MODELS, "affine")


def register_threat(cls: type) -> type:
    """Add a threat class (with ``name``, ``gradient_based``, ``from_budget``, ``scaled``) to the registry."""
    THREAT_MODELS[cls.name] = cls
    return cls


#: the budget table (a key of :data:`DEFAULT_BUDGETS`) that each data set of :data:`empirical.data.DATASETS` uses
BUDGET_TABLE_OF = {"mnist": "mnist", "mnist37": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
                   "cifar10_jpeg": "cifar10"}


def budget_table(dataset: str) -> str:
    """The key of :data:`DEFAULT_BUDGETS` whose budgets the data set ``dataset`` uses: the one mapping from a
    data set to its budgets ('mnist37' -> 'mnist', 'cifar10_jpeg' -> 'cifar10', 'fashion_mnist' its own)."""
    if dataset not in BUDGET_TABLE_OF:
        raise ValueError(f"dataset must be one of {tuple(BUDGET_TABLE_OF)}, got {dataset!r}")
    return BUDGET_TABLE_OF[dataset]


def _budget(dataset: str, name: str):
    return DEFAULT_BUDGETS[budget_table(dataset)][name]


def get_threat(name: str, dataset: str = "mnist", eps=None, **kwargs):
    """A threat by name with the dataset's literature budget unless ``eps`` is given.

    Names: the keys of :data:`THREAT_MODELS` (``linf``, ``l2``, ``l1``: eps a number, ``l1`` also takes
    ``q``; ``rt``: eps = (max_angle, max_shift)), and ``affine:<a>:<b>[:<beta>]`` with a among them and b
    a gradient-based one (eps = (eps_a, eps_b); beta 0.5).
    """
    if name.startswith("affine:"):
        parts = name.split(":")
        gradient = [n for n, c in THREAT_MODELS.items() if c.gradient_based]
        if len(parts) not in (3, 4) or parts[1] not in THREAT_MODELS or parts[2] not in gradient:
            raise ValueError(f"affine threat must be named affine:<{'|'.join(THREAT_MODELS)}>:<{'|'.join(gradient)}>"
                             f"[:beta], got {name!r}")
        try:
            beta = float(parts[3]) if len(parts) == 4 else kwargs.pop("beta", 0.5)
        except ValueError:
            raise ValueError(f"affine threat {name!r}: beta {parts[3]!r} is not a number") from None
        eps_a, eps_b = (None, None) if eps is None else eps
        return AffineCombination(get_threat(parts[1], dataset, eps_a), get_threat(parts[2], dataset, eps_b),
                                 beta=beta)
    if name not in THREAT_MODELS:
        raise ValueError(f"threat name must be one of {', '.join(THREAT_MODELS)}, affine:<a>:<b>[:beta]; "
                         f"got {name!r}")
    return THREAT_MODELS[name].from_budget(_budget(dataset, name) if eps is None else eps, **kwargs)


def make_threats(names, dataset: str = "mnist", budgets: dict | None = None) -> list:
    """The threats ``names`` with budgets from ``budgets`` ({name: eps}; absent: the dataset's default).
    An affine combination takes the budgets of its two parts."""
    budgets = budgets or {}
    out = []
    for n in names:
        if n.startswith("affine:"):
            a, b = n.split(":")[1:3]
            eps = None if a not in budgets and b not in budgets else (
                budgets.get(a, _budget(dataset, a)), budgets.get(b, _budget(dataset, b)))
        else:
            eps = budgets.get(n)
        out.append(get_threat(n, dataset, eps))
    return out
