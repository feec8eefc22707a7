"""Import direction theory <- simulate <- empirical/figures, and optional heavy dependencies."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"theory": set(), "simulate": {"theory"}, "empirical": {"theory", "simulate"},
          "figures": {"theory", "simulate", "empirical"}}
# heavy optional dependencies and where they may be imported at module level
ALLOWED_HEAVY = {"torch": ("empirical",), "numba": ("simulate/kernels/",), "matplotlib": ("figures",)}


# Imports of a heavy dependency (or of a later layer) inside a function: allowed only where listed here,
# each with the reason it is lazy.
LAZY_IMPORTS = {
    ("simulate/core/run.py", "numba"): "numba.get/set_num_threads for Execution.threads; the kernels import numba "
                                 "themselves (simulate/kernels/)",
    ("simulate/linear/ode.py", "matplotlib"): "only --plot draws; the main command must start without matplotlib",
    ("simulate/core/cli.py", "matplotlib"): "--plot checks that matplotlib is installed before any work starts",
    ("simulate/committee/ode.py", "matplotlib"): "only --plot draws, as in simulate/linear/ode.py",
}


def _imports(path: Path, root: Path = ROOT):
    """Every import of the module as (top-level package, line, lazy): at module level (lazy False, also
    inside if/try) and inside functions or classes (lazy True); relative imports resolved to the package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    eager = set()
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            eager.update(id(n) for n in ast.walk(node))
    package = path.relative_to(root).parts[0]
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods = [a.name.split(".")[0] for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level == 0:
                mods = [n.module.split(".")[0]] if n.module else []
            else:
                depth = len(path.relative_to(root).parts) - 1  # folders below the root
                mods = [package if n.level <= depth else "<beyond the package>"]
        else:
            continue
        for mod in mods:
            yield mod, n.lineno, id(n) not in eager


def import_violations(package: str, root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for mod, line, lazy in _imports(path, root):
            where = f"{rel}:{line} imports {mod}" + (" inside a function" if lazy else "")
            if mod == "<beyond the package>" or (mod in LAYERS and mod != package and mod not in LAYERS[package]):
                bad.append(where)  # the layers hold for lazy imports too
            elif mod in ALLOWED_HEAVY and not any(rel.startswith(p) for p in ALLOWED_HEAVY[mod]):
                if not (lazy and (rel, mod) in LAZY_IMPORTS):
                    bad.append(where)
    return bad


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_flow_one_way(package):
    bad = import_violations(package)
    assert not bad, "\n".join(bad)


def test_the_scan_sees_imports_inside_functions(tmp_path):
    """A deliberately wrong module: torch inside a function of simulate/, empirical from simulate/ lazily,
    and a relative import climbing out of the package; each is reported, the documented ones are not."""
    pkg = tmp_path / "simulate"
    pkg.mkdir()
    (pkg / "bad.py").write_text("def f():\n    import torch\n\n\nclass C:\n    def g(self):\n"
                                "        from empirical import data\n\n\nfrom .. import other\n")
    (pkg / "core").mkdir()
    (pkg / "core" / "run.py").write_text("def threads():\n    import numba\n")
    bad = import_violations("simulate", tmp_path)
    assert sorted(bad) == ["simulate/bad.py:10 imports <beyond the package>",
                           "simulate/bad.py:2 imports torch inside a function",
                           "simulate/bad.py:7 imports empirical inside a function"], bad


def test_theory_and_main_command_work_without_torch_and_numba():
    code = ("import sys\n"
            "for m in ('torch', 'numba', 'matplotlib'): sys.modules[m] = None\n"
            "import theory, simulate.ode\n"
            "assert simulate.ode.main(['--alpha-max', '5', '--quiet']) == 0\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def private_imports(root: Path = ROOT) -> list[str]:
    """Imports of a private name (one leading underscore) from another module, in the four packages."""
    bad = []
    for package in sorted(LAYERS):
        for path in sorted((root / package).rglob("*.py")):
            for n in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(n, ast.ImportFrom):
                    for a in n.names:
                        if a.name.startswith("_") and not a.name.startswith("__"):
                            mod = "." * n.level + (n.module or "")
                            bad.append(f"{path.relative_to(root).as_posix()}:{n.lineno} from {mod} import {a.name}")
    return bad


def test_no_private_name_is_imported_across_modules():
    """What a module shares is public; a leading underscore means 'this module only'."""
    bad = private_imports()
    assert not bad, "\n".join(bad)


def test_the_private_import_scan_sees_one(tmp_path):
    pkg = tmp_path / "simulate"
    pkg.mkdir()
    (pkg / "a.py").write_text("from .b import _helper, public\n")
    assert private_imports(tmp_path) == ["simulate/a.py:1 from .b import _helper"]
