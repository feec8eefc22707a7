"""python -m figures all | readme | NAME [NAME ...] [--quick] [--force] [--out DIR] [--quiet] | --list"""

from __future__ import annotations

import sys
from pathlib import Path

from simulate.core.cli import ArgumentParser, one_line_errors, progress_bar
from simulate.provenance import atomic_write, check_output_folder

from .core import DOCS_DIR, OUT_DIR, REGISTRY, Unavailable, run_figure
from . import talk  # noqa: F401  (registers figures)
from simulate.cli import command


def _register_optional() -> None:
    """Figure modules that register themselves; each needs only what it imports lazily."""
    import importlib

    for mod in ("figures.finite_size", "figures.tradeoffs", "figures.mnist_bridge", "figures.empirical_results",
                "figures.phase", "figures.protocol",
                "figures.committee", "figures.multinorm"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # the module exists but something it needs at import time is missing
                raise


#: the figures shown in README.md and docs/, copied as PNG into --docs by ``python -m figures readme``
README_FIGURES = ("scenarios", "robustness", "phase", "phase_diagram", "protocol", "committee_talk",
                  "committee_xor", "committee_plateau", "multinorm", "multinorm_set2")


@command
def main(argv=None) -> int:
    _register_optional()
    parser = ArgumentParser(prog="python -m figures", description="Regenerate the project's figures.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"'all', 'readme' (the README's figures, copied into --docs) or some of: "
                             f"{', '.join(REGISTRY)}")
    parser.add_argument("--quick", action="store_true", help="fast low-resolution pass (into OUT/quick)")
    parser.add_argument("--force", action="store_true", help="recompute data even if cached")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help=f"output folder, relative to the current folder [{OUT_DIR}]")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR,
                        help=f"with 'readme': where the README's PNGs go [{DOCS_DIR}]")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in REGISTRY.items():
            print(f"{name:20} {spec.description}")
        print(f"{'readme':20} the README's figures ({', '.join(README_FIGURES)}), PNG copied into {args.docs}")
        return 0
    if not args.names:
        parser.error("name the figures to make ('all', 'readme' or some of: " + ", ".join(REGISTRY) + ") or --list")
    readme = args.names == ["readme"]
    names = list(REGISTRY) if args.names == ["all"] else list(README_FIGURES) if readme else args.names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}, 'all' or 'readme'")
    with one_line_errors(parser):
        check_output_folder(args.out, flag="--out")
        if readme:
            check_output_folder(args.docs, flag="--docs")
    bar = progress_bar(len(names), "figures", show=not args.quiet, unit="fig")
    log = (lambda s: None) if args.quiet else bar.write if hasattr(bar, "write") else print
    skipped = []
    for name in names:
        bar.set_postfix_str(name)
        try:
            paths = run_figure(name, quick=args.quick, out_dir=args.out, force=args.force, log=log)
        except Unavailable as why:
            skipped.append(name)
            print(f"[{name}] skipped: {why}", file=sys.stderr)
            bar.update()
            continue
        bar.update()
        if readme:
            for png in (p for p in paths if p.suffix == ".png"):  # the figure and its supplements
                with atomic_write(args.docs / png.name, "wb") as fh:
                    fh.write(png.read_bytes())
                log(f"[{name}] copied to {args.docs / png.name}")
    bar.close()
    if skipped and not args.quiet:
        print(f"skipped {len(skipped)} figure(s): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
