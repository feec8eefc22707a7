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


def _top_level_imports(path: Path):
    """Imports executed when the module is imported (not those inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        nodes = [node]
        if isinstance(node, (ast.If, ast.Try)):
            nodes = list(ast.walk(node))
        for n in nodes:
            if isinstance(n, ast.Import):
                for a in n.names:
                    yield a.name.split(".")[0]
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                yield n.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_flow_one_way(package):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for mod in _top_level_imports(path):
            if mod in LAYERS and mod != package and mod not in LAYERS[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
            if mod in ALLOWED_HEAVY:
                rel = str(path.relative_to(ROOT))
                if not any(rel.startswith(prefix) for prefix in ALLOWED_HEAVY[mod]):
                    bad.append(f"{rel} imports {mod} at module level")
    assert not bad, "\n".join(bad)


def test_theory_and_main_command_work_without_torch_and_numba():
    code = ("import sys\n"
            "for m in ('torch', 'numba', 'matplotlib'): sys.modules[m] = None\n"
            "import theory, simulate.ode\n"
            "assert simulate.ode.main(['--alpha-max', '5', '--quiet']) == 0\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
