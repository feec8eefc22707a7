"""Up-front estimates of what a long command needs (memory, and a lower bound of its time) and the refusal of a
run that cannot fit this machine, before anything is allocated.

Every long command computes an :class:`Estimate` from its size parameters alone (N x replicas, grid points,
K and the quadrature rule, d x replicas) with one of the functions below and hands it to :func:`check` right
after parsing: a run whose memory exceeds what the machine has available (:func:`available_memory`: cgroup
limit, ``MemAvailable`` of /proc/meminfo, or psutil) or whose time lower bound exceeds :data:`TIME_MAX` is
refused with one line (the estimate, the machine's limit, the flags that make it smaller and ``--force``, which
runs it anyway); exit status 2 through the command's one-line errors.

What is estimated, and how honestly:

* memory: the arrays the run allocates (replica states, recorded values, the data set of a sweep, the nodes of
  a quadrature rule) from their shapes, times a small factor for the copies made while assembling results;
* time: a LOWER bound only, counting the elementary updates the run cannot avoid (every SGD step of the full
  engine touches each of the N weights, a committee step each of the K N weights, a sweep point costs at least
  one vectorised ODE solve) at a cost per update a few times below the fastest measured on this machine
  (``bench/mc.py``, ``bench/costs.py``); spread over the threads the run may use.  A run refused on time would
  take at least that long; one that passes may still take longer.  Commands whose cost has no such floor
  (the training loop) are not estimated; simulate.protocol's optimiser has a floor of one ODE solve per piece
  per start (:func:`protocol`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from theory.params import ParameterError

from .run import SECONDS_MAX

__all__ = ["Estimate", "ResourceError", "available_memory", "check", "add_force_argument", "fmt_bytes",
           "fmt_seconds", "mc_linear", "mc_committee", "multinorm_mc", "protocol", "sweep_points", "sweep", "sweep_estimate",
           "rule_nodes", "committee_rule", "TIME_MAX", "ODE_TIME_LIMIT", "OutOfTime", "wall_clock", "NS_PER_UPDATE",
           "NS_PER_REDUCED_STEP", "SWEEP_ODE_S_PER_POINT"]

#: the longest run accepted without --force: the project's bound on any wall-clock setting (about 4 months)
TIME_MAX = SECONDS_MAX
#: lower bound of the cost of one weight update in an SGD step of the numba kernels (full engine, committee,
#: multinorm): the linear kernel measured about 4 ns per update on this machine (bench/costs.py: simulate.mc
#: default, 6.4e9 updates in 35 CPU s with its compilation), so 1 ns leaves a margin of 4
NS_PER_UPDATE = 1.0
#: lower bound of one step of the reduced (order-parameter) engine: a handful of Gaussian draws
NS_PER_REDUCED_STEP = 10.0
#: lower bound of the seconds per grid point of the sweep's ODE engine: 1.9 ms was measured (bench/costs.py,
#: 10^4 points in 19 CPU s), so 1e-4 s leaves a margin of about 20
SWEEP_ODE_S_PER_POINT = 1e-4
#: copies made while results are assembled (blocks and the data set, replica records and their statistics)
ASSEMBLY_FACTOR = 2


#: wall-clock guard (seconds) of the ODE solvers that have no other: past it, one ParameterError, not a hang
ODE_TIME_LIMIT = 600.0


class OutOfTime(Exception):
    """Raised inside a right-hand side guarded by :func:`wall_clock` once its time is up; ``alpha`` is where the
    solver had got to."""

    def __init__(self, alpha: float):
        super().__init__(alpha)
        self.alpha = alpha


def wall_clock(fun, time_limit: float | None):
    """``fun(alpha, y)`` that raises :class:`OutOfTime` once ``time_limit`` seconds of wall time have passed since
    this call (None: ``fun`` itself).  A stiff right-hand side makes an explicit solver take ever smaller steps
    without failing; the guard turns that hang into an error the caller reports in one line."""
    if time_limit is None:
        return fun
    import time

    deadline = time.monotonic() + float(time_limit)

    def guarded(alpha, y):
        if time.monotonic() > deadline:
            raise OutOfTime(float(alpha))
        return fun(alpha, y)

    return guarded


class ResourceError(ParameterError):
    """A run refused before it starts because its estimate exceeds the machine (one line)."""


@dataclass(frozen=True)
class Estimate:
    """What a run needs: ``memory`` (bytes), ``seconds`` (a lower bound of the wall time, None when not
    estimated) and how that bound was obtained (``basis``); ``what`` names the size ("N x replicas =
    1000 x 32"), ``lower`` the flags that make it smaller."""

    what: str
    memory: float
    seconds: float | None = None
    basis: str = ""
    lower: str = ""


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def _cgroup_limit() -> int | None:
    """Memory left under this process's cgroup limit (v2 memory.max - memory.current, or v1), None without one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit_file).read_text().strip()
            if text == "max":
                return None
            limit, used = int(text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # cgroup v1 writes a huge number for "no limit"
            return None
        return max(limit - used, 0)
    return None


def available_memory() -> tuple[int | None, str]:
    """Bytes this process can still allocate, and where the number comes from; (None, why) when unknown.

    The smallest of the cgroup's remaining limit and ``MemAvailable`` (/proc/meminfo; psutil's
    ``virtual_memory().available`` where /proc is not there)."""
    found: list[tuple[int, str]] = []
    cg = _cgroup_limit()
    if cg is not None:
        found.append((cg, "the cgroup's memory limit"))
    try:
        text = Path("/proc/meminfo").read_text()
        m = re.search(r"^MemAvailable:\s+(\d+)\s+kB", text, re.M)
        if m:
            found.append((int(m.group(1)) * 1024, "MemAvailable in /proc/meminfo"))
    except OSError:
        pass
    if not found:
        try:
            import psutil

            found.append((int(psutil.virtual_memory().available), "psutil's available memory"))
        except ImportError:
            return None, "unknown (no /proc/meminfo, no psutil)"
    return min(found)


def check(est: Estimate, *, force: bool = False, memory: int | None = None, time_max: float = TIME_MAX) -> None:
    """Refuse ``est`` (raise :class:`ResourceError`, one line) when it needs more memory than is available
    (``memory``: bytes, default :func:`available_memory`) or at least ``time_max`` seconds; ``force`` skips
    the refusal."""
    if force:
        return
    if memory is None:
        memory, source = available_memory()
    else:
        source = "the given limit"
    problems = []
    if memory is not None and est.memory > memory:
        problems.append(f"about {fmt_bytes(est.memory)} of memory, more than the {fmt_bytes(memory)} available "
                        f"({source})")
    if est.seconds is not None and est.seconds > time_max:
        problems.append(f"at least {fmt_seconds(est.seconds)} ({est.basis}), more than the {fmt_seconds(time_max)} "
                        f"a run may take")
    if problems:
        lower = f"lower {est.lower}, or " if est.lower else ""
        raise ResourceError(f"{est.what} needs {' and '.join(problems)}; {lower}pass --force to run it anyway")


def add_force_argument(parser) -> None:
    """The ``--force`` flag that runs a command whose estimate exceeds the machine."""
    parser.add_argument("--force", action="store_true",
                        help="run even when the up-front estimate (memory, or a lower bound of the time) exceeds "
                             "this machine: available memory, or about 4 months")


def _threads(threads: int | None, replicas: int) -> int:
    n = threads if threads else (os.cpu_count() or 1)
    return max(1, min(int(n), int(replicas)))


# ---------------------------------------------------------------------------------------------------
# The estimates of the commands
# ---------------------------------------------------------------------------------------------------
def mc_linear(N: int, replicas: int, alpha_max: float, n_records: int, engine: str = "full",
              threads: int | None = None) -> Estimate:
    """simulate.mc: ``replicas`` runs of alpha_max N SGD steps; the full engine holds N weights per replica and
    touches each at every step, the reduced one a few order parameters."""
    full = engine == "full"
    state = replicas * ((N * 8 if full else 0) + 64) + 4 * 8 * replicas * n_records
    steps = alpha_max * N * replicas
    if full:
        ns, basis = steps * N * NS_PER_UPDATE, f"alpha_max N^2 replicas weight updates at >= {NS_PER_UPDATE:g} ns"
    else:
        ns, basis = steps * NS_PER_REDUCED_STEP, f"alpha_max N replicas steps at >= {NS_PER_REDUCED_STEP:g} ns"
    t = _threads(threads, replicas)
    return Estimate(f"--N x --replicas = {N} x {replicas} ({engine} engine, alpha_max {alpha_max:g})",
                    ASSEMBLY_FACTOR * state + 8 * N, ns * 1e-9 / t, f"{basis}, {t} thread(s)",
                    "--N, --replicas or --alpha-max")


def mc_committee(N: int, replicas: int, n_test: int, cases: list[tuple[int, float]], threads: int | None = None
                 ) -> Estimate:
    """simulate.mc_committee: for each case (K, alpha_max), ``replicas`` committees of K x N weights trained for
    alpha_max N steps (each touches the K N weights) and tested on ``n_test`` inputs per replica and record."""
    K_max = max(K for K, _ in cases)
    memory = ASSEMBLY_FACTOR * replicas * (K_max * N * 8 + 8 * n_test) + 8 * 4 * N
    updates = sum(a * N * K * N * replicas for K, a in cases)
    t = _threads(threads, replicas)
    return Estimate(f"--N x --replicas = {N} x {replicas} (K up to {K_max}, {len(cases)} cases)", memory,
                    updates * NS_PER_UPDATE * 1e-9 / t,
                    f"alpha N K N replicas weight updates at >= {NS_PER_UPDATE:g} ns, {t} thread(s)",
                    "--N or --replicas")


#: lower bound of the seconds per schedule piece of one objective evaluation of simulate.protocol: one
#: solve_ivp call (its set-up alone is about 100 microseconds here), so 2e-5 leaves a margin of about 5
S_PER_PROTOCOL_PIECE = 2e-5
#: bytes per schedule piece that simulate.protocol holds: the L-BFGS-B workspace (about 25 doubles per
#: variable at its memory of 10), the bounds list and the per-piece flow and sensitivity matrices
BYTES_PER_PROTOCOL_PIECE = 500


def protocol(segments: int, starts: int = 3, mc: tuple[int, int] | None = None, alpha_F: float = 50.0,
             schedules: int = 3) -> Estimate:
    """simulate.protocol: the optimiser over ``segments`` pieces (its memory, and the floor of one objective
    evaluation per start: one ODE solve per piece) and, with ``mc`` = (N, replicas), the Monte Carlo check
    of ``schedules`` schedules by the reduced engine (``replicas`` x alpha_F N steps each). The optimiser's
    number of evaluations depends on its convergence, so the time is a lower bound only."""
    memory = BYTES_PER_PROTOCOL_PIECE * segments
    seconds = starts * segments * S_PER_PROTOCOL_PIECE
    what = f"--segments {segments}"
    basis = f"{starts} starts x one ODE solve per piece at >= {S_PER_PROTOCOL_PIECE:g} s"
    lower = "--segments"
    if mc is not None:
        N, replicas = mc
        memory += ASSEMBLY_FACTOR * (replicas * 64 + 4 * 8 * replicas * (segments + 2))
        seconds += schedules * alpha_F * N * replicas * NS_PER_REDUCED_STEP * 1e-9
        what += f", --mc-N x --mc-replicas = {N} x {replicas} ({schedules} schedules, alpha_F {alpha_F:g})"
        basis += f", and {schedules} alpha_F N replicas steps at >= {NS_PER_REDUCED_STEP:g} ns, one thread"
        lower = "--segments, --mc-N, --mc-replicas or --alpha-F (or pass --no-mc)"
    return Estimate(what, memory, seconds, basis, lower)


def multinorm_mc(d: int, replicas: int, alpha_max: float, n_records: int, n_quantities: int,
                 threads: int | None = None) -> Estimate:
    """simulate.multinorm --engine mc: ``replicas`` runs of d + 1 weights for alpha_max (d + 1) steps."""
    N = d + 1
    memory = ASSEMBLY_FACTOR * (replicas * (N * 8 + 64) + 8 * n_quantities * replicas * n_records)
    t = _threads(threads, replicas)
    return Estimate(f"--d x --replicas = {d} x {replicas} (alpha_max {alpha_max:g})", memory,
                    alpha_max * N * N * replicas * NS_PER_UPDATE * 1e-9 / t,
                    f"alpha_max (d+1)^2 replicas weight updates at >= {NS_PER_UPDATE:g} ns, {t} thread(s)",
                    "--d, --replicas or --alpha-max")


def sweep_points(specs: list[str]) -> int:
    """The number of grid points of ``--grid`` specifications, read from their text alone (name=a:b:num ->
    num, name=v1,v2,... -> the count of values), so that a huge grid is refused before it is built.  A
    malformed specification counts 1 (the grid's own parser reports it)."""
    total = 1
    for spec in specs:
        body = spec.partition("=")[2].strip()
        parts = body.split(":")
        if len(parts) == 3:
            try:
                total *= max(1, int(parts[2]))
            except ValueError:
                pass
        elif body:
            total *= len(body.split(","))
    return total


def sweep(points: int, values_per_point: int, engine: str, workers: int = 1) -> Estimate:
    """simulate.sweep: the data set holds ``values_per_point`` doubles per point (every output over its extra
    dimensions); the ODE engine costs at least :data:`SWEEP_ODE_S_PER_POINT` per point (other engines: memory
    only here, each point being a Monte Carlo run of its own)."""
    memory = ASSEMBLY_FACTOR * 8 * points * (values_per_point + 1)
    seconds = points * SWEEP_ODE_S_PER_POINT / max(1, workers) if engine == "ode" else None
    return Estimate(f"--grid: {points:,} points x {values_per_point} values ({engine} engine)", memory, seconds,
                    f">= {SWEEP_ODE_S_PER_POINT:g} s per point, {max(1, workers)} worker(s)",
                    "the number of points (num in --grid name=start:stop:num) or the --alphas")


def sweep_estimate(specs: list[str], engine, options: dict, workers: int = 1) -> Estimate:
    """:func:`sweep` of a sweep engine (``simulate.sweep.engines.SweepEngine``) at checked ``options`` over the
    ``--grid`` specifications: the values per point from the engine's outputs and their coordinates."""
    coords = engine.coords(options)
    values = sum(int(math.prod(len(coords[d]) if d in coords else 1 for d in dims))
                 for dims in engine.outputs(options).values())
    return sweep(sweep_points(specs), values, engine.name, workers)


def rule_nodes(K: int, rule: str) -> int | None:
    """Quadrature nodes of a committee drift rule given as text ('gh:n', 'qmc:m', 'rqmc:m:r', 'line:n', 'vline:m'; see
    theory.committee.quadrature.drift_rule), without building it; None for a text it does not read."""
    kind, _, rest = str(rule).partition(":")
    nums = rest.split(":") if rest else []
    try:
        n = [int(x) for x in nums]
    except ValueError:
        return None
    if kind == "gh" and len(n) == 1:
        return n[0] ** K
    if kind == "qmc" and len(n) == 1:
        return 2 * 2 ** n[0]  # and their mirrors
    if kind == "rqmc" and len(n) == 2:
        return 2 * 2 ** n[0] * n[1]
    if kind == "line" and len(n) == 1:
        return n[0] ** max(K - 1, 0)  # the outer grid alone (each node adds a line of nodes): a lower bound
    if kind == "vline" and len(n) == 1:  # per cluster: the product rule's lines inside the ball inscribed in its box
        # (the rest falls below the weight cut), each with its inner panels; every foot and K // 2 pairs graded.
        # Measured at K = 4, M = 3 to 5 (the large-rate case at alpha 0): 1.8 to 2.0 times the nodes the rule keeps.
        from theory.committee.quadrature import VLINE_LEVELS, VLINE_NSD, VLINE_NSD_IN, VLINE_WIDTH, VLINE_WIDTH_IN

        d = max(K - 1, 0)
        ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1) / 2 ** d
        lines = ball * ((2 * VLINE_NSD / VLINE_WIDTH + 2 * VLINE_LEVELS) * n[0]) ** d
        inner = math.ceil(2 * VLINE_NSD_IN / VLINE_WIDTH_IN) + 1 + (2 * VLINE_LEVELS + 1) * (K // 2)
        return int(lines * inner * n[0])
    return None


def committee_rule(K: int, rule: str, n_alpha: int) -> Estimate:
    """simulate.committee: the drift's quadrature rule holds ``nodes`` points of K coordinates and a weight, and
    each evaluation of the drift forms a few arrays of that size (local fields, activations, their products)."""
    nodes = rule_nodes(K, rule) or 0
    memory = 8 * nodes * (K + 1) * 6 + 8 * n_alpha * (K * K + 4 * K + 8)
    return Estimate(f"--K {K} with the quadrature rule {rule} ({nodes:.3g} nodes)", memory, None, "",
                    "the rule (--rule, e.g. gh:n with a smaller n, or qmc:m)")
