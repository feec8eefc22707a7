"""The figure machinery: a registry of figures, each a ``compute`` (data) and a ``plot`` (picture).

Data behind each figure are saved beside it as ``NAME.npz`` with a provenance sidecar ``NAME.json`` that
holds the parameter key; when ``python -m figures NAME`` is run again with the same parameters (same key)
the data are reused and only the plot is redrawn.  Images are written as PNG and PDF, atomically.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simulate.provenance import atomic_write, provenance, save_figure, to_jsonable, write_json  # noqa: E402
from theory.params import stable_key  # noqa: E402

__all__ = ["FigureSpec", "REGISTRY", "register", "Unavailable", "OUT_DIR", "run_figure", "param_key", "DOCS_DIR",
           "PALETTE", "THREAT_COLORS", "MEASURED", "series_colors", "legend_below"]

#: default output folders, relative to the current folder (never the package's own location, so running
#: from elsewhere cannot overwrite a checkout's files)
OUT_DIR = Path("figures") / "out"
DOCS_DIR = Path("docs") / "img"


#: One palette for every figure: the same thing in the same colour everywhere; a theory curve and the
#: measurement of the same thing share the colour (theory a line, measurement points with error bars).
PALETTE = {
    "standard": "#1f77b4",       # standard training (eps = 0)
    "adversarial": "#d62728",    # adversarial training (fixed eps), and the optimal schedule
    "best_constant": "#ff7f0e",  # the best constant budget of a protocol
    "random": "#9467bd",         # random budgets (eps drawn per example)
    "non_robust": "#2ca02c",     # non-robust-only updates
    "reference": "#000000",      # bounds and optima (best linear classifier, coupling bound)
    "bayes": "#7f7f7f",          # Bayes error, zero lines
    "E": "#404040",              # test error E where E and S share a panel
    "S": "#8c564b",              # adversarial error S where E and S share a panel
}
#: threats of the empirical figures, and the clean / union accuracies
THREAT_COLORS = {"clean": "#7f7f7f", "linf": "#1f77b4", "l1": "#ff7f0e", "l2": "#2ca02c", "union": "#d62728",
                 "rt": "#8c564b"}
#: how a measurement is drawn: points with standard-error bars
MEASURED = dict(fmt="o", ms=3.5, capsize=2, elinewidth=0.9)


def series_colors(n: int) -> list:
    """n distinguishable colours for the components of one order parameter (R[k, d], Q[k, l], b[k])."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def legend_below(fig, handles=None, labels=None, ncol: int = 4, **kwargs):
    """A figure legend under the panels (outside the data); constrained layout makes room for it."""
    if handles is None:
        handles, labels = [], []
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels and not lab.startswith("_"):
                    handles.append(h)
                    labels.append(lab)
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=kwargs.pop("fontsize", 8),
                      frameon=False, **kwargs)


class Unavailable(RuntimeError):
    """A figure cannot be made here (a missing optional dependency or results file); the message says why."""


@dataclass
class FigureSpec:
    name: str
    description: str
    params: Callable[[bool], dict[str, Any]]  # quick -> the parameters that determine the data
    compute: Callable[[dict[str, Any]], dict[str, np.ndarray]]
    plot: Callable[[dict[str, np.ndarray], dict[str, Any]], Any]  # a Figure, or {name suffix: Figure}
    requires: tuple[str, ...] = field(default_factory=tuple)  # importable modules needed


REGISTRY: dict[str, FigureSpec] = {}


def register(spec: FigureSpec) -> FigureSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"figure {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def param_key(params: dict[str, Any]) -> str:
    return stable_key(to_jsonable(params))


def _check_requirements(spec: FigureSpec) -> None:
    import importlib.util

    missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise Unavailable(f"needs {', '.join(missing)} (pip install -e '.[all]')")


def load_cached(spec: FigureSpec, params: dict[str, Any], out_dir: Path) -> dict[str, np.ndarray] | None:
    data_path, side_path = out_dir / f"{spec.name}.npz", out_dir / f"{spec.name}.json"
    if not (data_path.exists() and side_path.exists()):
        return None
    try:
        side = json.loads(side_path.read_text())
        if side.get("key") != param_key(params):
            return None
        with np.load(data_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError):
        return None


def save_data(spec: FigureSpec, params: dict[str, Any], data: dict[str, np.ndarray], out_dir: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in data.items()})
    with atomic_write(out_dir / f"{spec.name}.npz", "wb") as fh:
        fh.write(buf.getvalue())
    write_json(out_dir / f"{spec.name}.json", {"figure": spec.name, "description": spec.description,
                                               "key": param_key(params),
                                               "provenance": provenance(params=params)})


def save_figure_files(fig: "plt.Figure", name: str, out_dir: Path, formats: tuple[str, ...] = ("png", "pdf")
                      ) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.png`` (130 dpi) and ``.pdf`` (``formats``) through
    :func:`simulate.core.provenance.save_figure` (atomic, one format per suffix) and close it; the paths."""
    paths = []
    for ext in formats:
        path = out_dir / f"{name}.{ext}"
        save_figure(fig, path, dpi=130 if ext == "png" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def run_figure(name: str, quick: bool = False, out_dir: Path | None = None, force: bool = False,
               log: Callable[[str], None] = print) -> list[Path]:
    """Compute (or reuse) the data of one figure and draw it; raises Unavailable when it cannot be made."""
    spec = REGISTRY[name]
    _check_requirements(spec)
    out_dir = Path(out_dir or OUT_DIR)
    if quick:
        out_dir = out_dir / "quick"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = spec.params(quick)
    data = None if force else load_cached(spec, params, out_dir)
    if data is None:
        data = spec.compute(params)
        save_data(spec, params, data, out_dir)
        log(f"[{name}] computed data -> {out_dir / (name + '.npz')}")
    else:
        log(f"[{name}] reused data (same parameters) from {out_dir / (name + '.npz')}")
    figs = spec.plot(data, params)
    if not isinstance(figs, dict):  # a plot may return {suffix: figure}: the main figure and supplements
        figs = {"": figs}
    paths = []
    for suffix, fig in figs.items():
        # the quick pass is for looking: PNG only (the PDF takes as long to render again)
        paths += save_figure_files(fig, name + suffix, out_dir, ("png",) if quick else ("png", "pdf"))
    log(f"[{name}] wrote {', '.join(str(p) for p in paths)}")
    return paths
