"""The modules' former paths, kept as aliases of their homes in the family folders.

``import theory.params``, ``from simulate.mc import run_mc`` and ``python -m simulate.ode`` keep working after
the move into ``theory/{core,linear,committee,structured,tradeoffs}/`` and ``simulate/{core,linear,...}/``
(see docs/architecture.md).  :func:`install` puts a finder on ``sys.meta_path`` that answers for each old
name with the module at its new path: the same module object (``import theory.params`` *is*
``theory.linear.params``, so attributes, classes and monkeypatching agree), and ``python -m old.name`` runs
the new module as ``__main__``.  No file stands at the old paths, so nothing is written twice.

Hand-written because the standard library offers no module alias; it uses only the documented import
protocol (a meta path finder whose loader replaces its entry in ``sys.modules``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

__all__ = ["MOVED", "install"]

#: old module name -> the module's home now.
MOVED: dict[str, str] = {
    # theory: the shared core, the linear model, the bounds of the trade-off family
    "theory.gaussian": "theory.core.gaussian",
    "theory.params": "theory.linear.params",
    "theory.ode": "theory.linear.ode",
    "theory.errors": "theory.linear.errors",
    "theory.derivation": "theory.linear.derivation",
    "theory.control": "theory.linear.control",
    "theory.committee_derivation": "theory.committee.derivation",
    "theory.structured_derivation": "theory.structured.derivation",
    "theory.tradeoff": "theory.tradeoffs.threats",
    "theory.tradeoff_lp": "theory.tradeoffs.lp",
    "theory.tradeoff_spatial": "theory.tradeoffs.spatial",
    "theory.bridge": "theory.tradeoffs.bridge",
    # simulate: the shared core, the linear model's commands, the committee's Monte Carlo, sweeps, trade-offs
    "simulate.cli": "simulate.core.cli",
    "simulate.provenance": "simulate.core.provenance",
    "simulate.ode": "simulate.linear.ode",
    "simulate.mc": "simulate.linear.mc",
    "simulate.compare": "simulate.linear.compare",
    "simulate.protocol": "simulate.linear.protocol",
    "simulate.scenarios": "simulate.linear.scenarios",
    "simulate.mc_committee": "simulate.committee.mc",
    "simulate.tradeoff": "simulate.tradeoffs.bounds",
    "simulate.sweep_engines": "simulate.sweep.engines",
}


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder and loader of the old names of one package."""

    def __init__(self, prefix: str):
        self.prefix = prefix + "."

    def find_spec(self, name, path=None, target=None):
        if not name.startswith(self.prefix) or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        # The module itself, imported under its new name (during a circular import, the partly initialised
        # module, as a plain import would give).  The import system then sets __spec__ to the alias's spec;
        # exec_module puts the module's own spec back.
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = module.__spec__.loader_state

    def get_code(self, name: str):
        """The code ``python -m old.name`` runs: the new module as __main__ (runpy asks loaders for this)."""
        return compile(f"import runpy\nrunpy.run_module({MOVED[name]!r}, run_name='__main__', alter_sys=True)\n",
                       f"<alias of {MOVED[name]}>", "exec")


def install(package: str) -> None:
    """Answer for the old names under ``package`` (idempotent).  The finder goes first on ``sys.meta_path``:
    it answers only for the exact names of :data:`MOVED`, and an older copy of the package elsewhere on the
    path (an editable install of another checkout) must not answer for them instead."""
    if not any(isinstance(f, _AliasFinder) and f.prefix == package + "." for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder(package))
