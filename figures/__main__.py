"""python -m figures all | NAME [NAME ...] [--quick] [--force] [--out DIR] [--quiet]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core import OUT_DIR, REGISTRY, Unavailable, run_figure
from . import talk  # noqa: F401  (registers figures)


def _register_optional() -> None:
    """Figure modules that register themselves; each needs only what it imports lazily."""
    import importlib

    for mod in ("figures.finite_size", "figures.tradeoffs", "figures.mnist_bridge", "figures.empirical_results",
                "figures.committee"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # the module exists but something it needs at import time is missing
                raise


def main(argv=None) -> int:
    _register_optional()
    parser = argparse.ArgumentParser(prog="python -m figures", description="Regenerate the project's figures.")
    parser.add_argument("names", nargs="+", help=f"'all' or some of: {', '.join(REGISTRY)}")
    parser.add_argument("--quick", action="store_true", help="fast low-resolution pass (into OUT/quick)")
    parser.add_argument("--force", action="store_true", help="recompute data even if cached")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder [{OUT_DIR}]")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in REGISTRY.items():
            print(f"{name:20} {spec.description}")
        return 0
    names = list(REGISTRY) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)} or 'all'")
    log = (lambda s: None) if args.quiet else print
    skipped = []
    for name in names:
        try:
            run_figure(name, quick=args.quick, out_dir=args.out, force=args.force, log=log)
        except Unavailable as why:
            skipped.append(name)
            print(f"[{name}] skipped: {why}", file=sys.stderr)
    if skipped and not args.quiet:
        print(f"skipped {len(skipped)} figure(s): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
